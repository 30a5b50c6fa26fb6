"""The loop-free CIF against the sequential oracle (tests/cif_reference.py) and the spec's examples."""

import runpy
from pathlib import Path
from typing import List, NamedTuple

import pytest
import torch

from cif_plugin.modules import Cif, CifWeightPredictor, integrate_and_fire, scale_to_target_lengths

from cif_reference import pad_tokens, sequential_cif

REPO_ROOT = Path(__file__).resolve().parents[1]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _random_batch(seed, dtype=torch.float64, max_batch=5, max_frames=24, channels=4, weight_scale=1.0):
    generator = torch.Generator().manual_seed(seed)
    batch = int(torch.randint(1, max_batch + 1, (), generator=generator))
    frames = int(torch.randint(1, max_frames + 1, (), generator=generator))
    hidden = torch.randn(batch, frames, channels, generator=generator, dtype=dtype)
    alpha = torch.rand(batch, frames, generator=generator, dtype=dtype) * weight_scale
    lengths = torch.randint(1, frames + 1, (batch,), generator=generator)
    lengths[0] = frames  # the longest utterance is where the reference forgot the tail
    padding_mask = torch.arange(frames) >= lengths.unsqueeze(1)
    return hidden, alpha, lengths, padding_mask


class _Run(NamedTuple):
    tokens: torch.Tensor
    counts: torch.Tensor
    frames: List[List[int]]
    grad_hidden: torch.Tensor
    grad_alpha: torch.Tensor


def _assert_same(ours: _Run, ref: _Run, context=""):
    assert torch.equal(ours.counts, ref.counts), f"fire counts differ {context}"
    assert ours.frames == ref.frames, f"fire frames differ {context}"
    for name in ("tokens", "grad_hidden", "grad_alpha"):
        torch.testing.assert_close(
            getattr(ours, name), getattr(ref, name), atol=1e-5, rtol=1e-5, msg=f"{name} {context}"
        )


def _compare_with_sequential(hidden, alpha_raw, lengths, padding_mask, threshold, tail, target_lengths=None):
    """Run both implementations with autograd; return their outputs and gradients (ours, reference)."""
    results = []
    projection = torch.randn(hidden.shape[-1], dtype=hidden.dtype, generator=torch.Generator().manual_seed(7))
    for fast in (True, False):
        h = hidden.detach().clone().requires_grad_(True)
        a_raw = alpha_raw.detach().clone().requires_grad_(True)
        a = a_raw.masked_fill(padding_mask, 0.0)
        if target_lengths is not None:
            a = scale_to_target_lengths(a, target_lengths)
        if fast:
            out = integrate_and_fire(h, a, lengths, threshold, tail)
            tokens, counts = out.cif_out, out.fire_counts
            frames = [out.fire_frames[b, : counts[b]].tolist() for b in range(h.shape[0])]
            assert torch.equal(out.cif_padding_mask, torch.arange(tokens.shape[1]) >= counts.unsqueeze(1))
            assert (out.fire_frames[out.cif_padding_mask] == -1).all()
        else:
            token_list, frames = sequential_cif(h, a, lengths, threshold, tail)
            counts = torch.tensor([len(f) for f in frames])
            tokens = pad_tokens(token_list, max(int(counts.max()), 1))
        # A loss that weights every token differently, so misplaced tokens change the gradients.
        position_weight = torch.arange(1, tokens.shape[1] + 1, dtype=h.dtype).view(1, -1, 1)
        loss = (torch.tanh(tokens * position_weight) @ projection).sum()
        (loss + 0.0 * (h.sum() + a_raw.sum())).backward()  # keeps a graph when nothing fires
        results.append(_Run(tokens.detach(), counts, frames, h.grad, a_raw.grad))
    return results


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("tail", [None, 0.4])
def test_matches_sequential_reference(seed, tail):
    hidden, alpha, lengths, padding_mask = _random_batch(seed)
    _assert_same(*_compare_with_sequential(hidden, alpha, lengths, padding_mask, 0.99, tail))


@pytest.mark.parametrize("seed", range(20))
def test_scaled_weights_above_one_match_sequential(seed):
    """Training-time scaling to long targets gives weights > 1: the excess must force later fires."""
    hidden, alpha, lengths, padding_mask = _random_batch(100 + seed, max_frames=10)
    target_lengths = lengths * 2 + 1  # more tokens than frames: many weights exceed 1
    ours, ref = _compare_with_sequential(hidden, alpha, lengths, padding_mask, 0.99, None, target_lengths)
    scaled = scale_to_target_lengths(alpha.masked_fill(padding_mask, 0.0), target_lengths)
    assert (scaled > 1).any()
    _assert_same(ours, ref)


@pytest.mark.parametrize("seed", range(10))
def test_float32_matches_float64_sequential(seed):
    hidden, alpha, lengths, padding_mask = _random_batch(
        200 + seed, dtype=torch.float32, max_frames=64, channels=16
    )
    out = integrate_and_fire(hidden, alpha, lengths, 0.99, 0.4)
    assert out.cif_out.dtype == torch.float32
    tokens, frames = sequential_cif(
        hidden.double(), alpha.double().masked_fill(padding_mask, 0.0), lengths, 0.99, 0.4
    )
    assert out.fire_counts.tolist() == [len(f) for f in frames]
    torch.testing.assert_close(
        out.cif_out.double(), pad_tokens(tokens, out.cif_out.shape[1]), atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize(
    "case",
    [
        "all_zero_weights",
        "single_frame_utterances",
        "batch_of_one",
        "single_frame_batch",
        "threshold_one",
        "all_fire",
    ],
)
def test_edge_cases_match_sequential(case):
    hidden, alpha, lengths, padding_mask = _random_batch(300, max_batch=4, max_frames=12)
    threshold = 0.99
    if case == "all_zero_weights":
        alpha = torch.zeros_like(alpha)
    elif case == "single_frame_utterances":
        lengths = torch.ones_like(lengths)
        padding_mask = torch.arange(hidden.shape[1]) >= lengths.unsqueeze(1)
        alpha = alpha + 0.5
    elif case == "batch_of_one":
        hidden, alpha, lengths, padding_mask = hidden[:1], alpha[:1], lengths[:1], padding_mask[:1]
    elif case == "single_frame_batch":
        hidden, alpha = hidden[:, :1], alpha[:, :1] * 0.3 + 0.6
        lengths = torch.ones_like(lengths)
        padding_mask = padding_mask[:, :1] & False
    elif case == "threshold_one":
        threshold = 1.0
    elif case == "all_fire":
        alpha = torch.full_like(alpha, 1.5)
    for tail in (None, 0.4, 0.0):
        _assert_same(
            *_compare_with_sequential(hidden, alpha, lengths, padding_mask, threshold, tail), f"{case} {tail}"
        )


def test_all_zero_weights_give_no_tokens_but_one_padded_row():
    out = integrate_and_fire(torch.randn(3, 5, 2), torch.zeros(3, 5), tail_threshold=0.4)
    assert out.cif_out.shape == (3, 1, 2)
    assert out.fire_counts.tolist() == [0, 0, 0]
    assert out.cif_padding_mask.all() and (out.cif_out == 0).all() and (out.fire_frames == -1).all()


def _one_hot_frames(num_frames):
    """h_t = e_t, so a fired vector reads directly as the weights it took from each frame."""
    return torch.eye(num_frames, dtype=torch.float64).unsqueeze(0)


def test_spec_example_two_fires():
    alpha = torch.tensor([[0.3, 0.5, 0.4, 0.6, 0.2]], dtype=torch.float64)
    out = integrate_and_fire(_one_hot_frames(5), alpha, threshold=0.99, tail_threshold=0.4)
    expected = torch.tensor([[[0.3, 0.5, 0.2, 0.0, 0.0], [0.0, 0.0, 0.2, 0.6, 0.2]]], dtype=torch.float64)
    assert out.fire_counts.tolist() == [2]
    assert out.fire_frames.tolist() == [[2, 4]]
    torch.testing.assert_close(out.cif_out, expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("tail_threshold, expected_tokens", [(0.4, 2), (0.85, 1)])
def test_spec_example_tail(tail_threshold, expected_tokens):
    """alpha = [0.3, 0.5, 0.4, 0.6] + one padded frame: tail (0.2 h2 + 0.6 h3) / 0.8 at 0.4, none at 0.85."""
    alpha = torch.tensor([[0.3, 0.5, 0.4, 0.6, 0.0]], dtype=torch.float64)
    out = integrate_and_fire(
        _one_hot_frames(5), alpha, torch.tensor([4]), threshold=0.99, tail_threshold=tail_threshold
    )
    expected = torch.tensor(
        [[0.3, 0.5, 0.2, 0.0, 0.0], [0.0, 0.0, 0.2 / 0.8, 0.6 / 0.8, 0.0]], dtype=torch.float64
    )
    assert out.fire_counts.tolist() == [expected_tokens]
    torch.testing.assert_close(out.cif_out[0], expected[:expected_tokens], atol=1e-9, rtol=0)
    assert out.fire_frames.tolist() == [[2, 3][:expected_tokens]]


@pytest.mark.parametrize(
    "threshold, weights, fire_frames",
    [
        (1.0, [0.5, 0.5, 0.25, 0.75, 0.5], [1, 3]),  # a + w == beta at frames 1 and 3
        (0.75, [0.25, 0.5, 0.5, 0.125, 0.125], [1]),  # 0.25 + 0.5 == 0.75 fires; the carry is -0.25
        (0.5, [0.5, 0.5, 0.5, 0.5], [0, 2]),  # each fire leaves a carry of -0.5
    ],
)
def test_weights_that_reach_the_threshold_exactly_fire(threshold, weights, fire_frames):
    """Binary fractions add up without rounding, so a + w == beta exactly: the rule is a + w >= beta."""
    num_frames = len(weights)
    alpha = torch.tensor([weights], dtype=torch.float64)
    for dtype in (torch.float64, torch.float32):
        out = integrate_and_fire(_one_hot_frames(num_frames).to(dtype), alpha.to(dtype), threshold=threshold)
        assert out.fire_frames[0].tolist() == fire_frames, dtype
    _, reference_frames = sequential_cif(
        _one_hot_frames(num_frames), alpha, torch.tensor([num_frames]), threshold
    )
    assert reference_frames == [fire_frames]
    # Just below the threshold nothing fires at the first of those frames.
    below = alpha.clone()
    below[0, fire_frames[0]] -= 2.0**-20
    out = integrate_and_fire(_one_hot_frames(num_frames), below, threshold=threshold)
    assert fire_frames[0] not in out.fire_frames[0].tolist()


def test_default_threshold_is_0_99():
    alpha = torch.tensor([[0.5, 0.495, 0.3]], dtype=torch.float64)  # 0.995 fires at 0.99, not at 1
    hidden = _one_hot_frames(3)
    assert integrate_and_fire(hidden, alpha).fire_frames.tolist() == [[1]]
    assert integrate_and_fire(hidden, alpha, threshold=1.0).fire_frames.tolist() == [[2]]
    cif = Cif(CifWeightPredictor(3, "linear"), input_dim=3)
    assert cif.threshold == 0.99 and cif.tail_threshold == 0.5
    assert cif.apply_scaling and cif.apply_tail_handling and cif.output_proj is None
    assert Cif(CifWeightPredictor(3, "linear"), input_dim=3, threshold=1.0).threshold == 1.0
    projected = Cif(CifWeightPredictor(3, "linear"), input_dim=3, output_dim=2).output_proj
    assert projected.weight.shape == (2, 3) and projected.bias is None


@pytest.mark.parametrize("threshold", [0.0, -0.5, 1.01, 1.99])
def test_thresholds_outside_0_1_are_refused(threshold):
    """The closed form counts fires as floor(S_t + 1 - beta), which needs 0 < beta <= 1: at
    beta = 1.99 it would fire at 0.995 where the sequential definition never fires."""
    message = f"^threshold must be in \\(0, 1\\], got {threshold}$"
    with pytest.raises(ValueError, match=message):
        integrate_and_fire(_one_hot_frames(3), torch.full((1, 3), 0.4), threshold=threshold)
    with pytest.raises(ValueError, match=message):
        Cif(CifWeightPredictor(3, "linear"), input_dim=3, threshold=threshold)


def test_tail_is_divided_by_its_weight_plus_1e_10():
    """A tail of weight 1e-10 is emitted as h * 1e-10 / (1e-10 + 1e-10): the epsilon is added."""
    alpha = torch.tensor([[1.0, 1e-10]], dtype=torch.float64)
    out = integrate_and_fire(_one_hot_frames(2), alpha, threshold=1.0, tail_threshold=0.0)
    assert out.fire_counts.tolist() == [2]
    torch.testing.assert_close(out.cif_out[0, 1], torch.tensor([0.0, 0.5], dtype=torch.float64))
    tokens, _ = sequential_cif(_one_hot_frames(2), alpha, torch.tensor([2]), 1.0, 0.0)
    torch.testing.assert_close(out.cif_out[0], tokens[0])


@pytest.mark.parametrize("needs_grad", ["hidden", "alpha"])
def test_gradient_of_one_input_alone(needs_grad):
    """Frozen weights (or frozen frames) still give the other input its full gradient."""
    hidden, alpha, lengths, _ = _random_batch(700, max_frames=12)
    both = (hidden.clone().requires_grad_(True), alpha.clone().requires_grad_(True))
    integrate_and_fire(*both, lengths, 0.99, 0.4).cif_out.pow(2).sum().backward()
    one = (
        hidden.clone().requires_grad_(needs_grad == "hidden"),
        alpha.clone().requires_grad_(needs_grad == "alpha"),
    )
    integrate_and_fire(*one, lengths, 0.99, 0.4).cif_out.pow(2).sum().backward()
    index = 0 if needs_grad == "hidden" else 1
    torch.testing.assert_close(one[index].grad, both[index].grad)
    assert one[1 - index].grad is None


def test_scaling_formula_with_its_epsilon():
    """alpha * L / (sum(alpha) + 1e-8), float32 out for float16 in; a sum of 1e-8 shows the epsilon."""
    tiny = scale_to_target_lengths(torch.tensor([[1e-8, 0.0]], dtype=torch.float64), torch.tensor([1]))
    torch.testing.assert_close(tiny, torch.tensor([[0.5, 0.0]], dtype=torch.float64))
    # float16 weights are summed in float32: 300 of them would lose their last bits in float16.
    alpha = torch.rand(2, 300, generator=torch.Generator().manual_seed(3)).half()
    scaled = scale_to_target_lengths(alpha, torch.tensor([30, 100]))
    assert scaled.dtype == torch.float32
    expected = alpha.float() * torch.tensor([[30.0], [100.0]]) / (alpha.float().sum(1, keepdim=True) + 1e-8)
    torch.testing.assert_close(scaled, expected)


def test_tail_of_longest_utterance_is_handled():
    """The reference skips the tail when len == T; ours must not depend on the padded length."""
    alpha = torch.tensor([[0.3, 0.5, 0.4, 0.6]], dtype=torch.float64)
    out = integrate_and_fire(_one_hot_frames(4), alpha, threshold=0.99, tail_threshold=0.4)
    assert out.fire_counts.tolist() == [2]
    torch.testing.assert_close(out.cif_out[0, 1], torch.tensor([0.0, 0.0, 0.25, 0.75], dtype=torch.float64))


def test_scaling_sums_to_target_length_and_fires_that_many_tokens():
    torch.manual_seed(0)
    alpha = torch.rand(16, 40) * 0.5 + 0.5
    lengths = torch.randint(20, 41, (16,))
    padding_mask = torch.arange(40) >= lengths.unsqueeze(1)
    alpha = alpha.masked_fill(padding_mask, 0.0)
    target_lengths = torch.randint(5, 11, (16,))
    scaled = scale_to_target_lengths(alpha, target_lengths)
    torch.testing.assert_close(scaled.sum(1), target_lengths.float(), atol=1e-5, rtol=0)
    assert (scaled < 1).all()  # no frame crosses two token boundaries, so every token fires
    out = integrate_and_fire(torch.randn(16, 40, 8), scaled, lengths)
    assert torch.equal(out.fire_counts, target_lengths)


def test_utterance_outputs_do_not_depend_on_batch_padding():
    torch.manual_seed(1)
    predictor = CifWeightPredictor(8, "conv", conv_width=3, conv_channels=6)
    cif = Cif(predictor, input_dim=8, tail_threshold=0.4).eval()
    short = torch.randn(1, 7, 8)
    alone = cif(short)
    longer = torch.randn(2, 15, 8)
    batch = torch.cat([torch.nn.functional.pad(short, (0, 0, 0, 8)), longer[:1], longer[1:]])
    lengths = torch.tensor([7, 12, 15])
    # Garbage in the padded frames must not leak into the weights or the tokens.
    batch[0, 7:] = 100.0
    batched = cif(batch, lengths)
    count = int(alone.fire_counts[0])
    assert int(batched.fire_counts[0]) == count
    torch.testing.assert_close(batched.alpha[0, :7], alone.alpha[0], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(batched.cif_out[0, :count], alone.cif_out[0, :count], atol=1e-6, rtol=1e-6)
    assert batched.cif_padding_mask[0, count:].all()


def _predictor_oracle(predictor, hidden, padding_mask):
    """The documented layers written out with torch.nn.functional (dropout off)."""
    x = hidden.masked_fill(padding_mask.unsqueeze(-1), 0.0)
    if predictor.predictor_type == "conv":
        width = predictor.conv.kernel_size[0]
        padded = torch.nn.functional.pad(x.transpose(1, 2), (width // 2, width // 2))  # 'same' zero padding
        x = torch.nn.functional.conv1d(padded, predictor.conv.weight, predictor.conv.bias).transpose(1, 2)
    elif predictor.predictor_type == "dense":
        x = torch.relu(torch.nn.functional.linear(x, predictor.dense.weight, predictor.dense.bias))
    logits = torch.nn.functional.linear(x, predictor.output_proj.weight, predictor.output_proj.bias)
    return torch.sigmoid(logits.squeeze(-1)).masked_fill(padding_mask, 0.0)


@pytest.mark.parametrize(
    "predictor_type, options, parameters",
    [
        ("conv", {"conv_width": 5, "conv_channels": 5}, 8 * 5 * 5 + 5 + 5 + 1),
        ("dense", {"dense_units": 6}, 8 * 6 + 6 + 6 + 1),
        ("linear", {}, 8 + 1),
    ],
)
def test_weight_predictor_variants(predictor_type, options, parameters):
    torch.manual_seed(7)
    predictor = CifWeightPredictor(8, predictor_type, **options).eval()
    assert predictor.predictor_type == predictor_type
    assert sum(p.numel() for p in predictor.parameters()) == parameters
    torch.nn.init.normal_(predictor.output_proj.bias)  # zero at initialisation: make it count
    hidden = torch.randn(2, 6, 8)
    padding_mask = torch.arange(6) >= torch.tensor([[6], [3]])
    alpha = predictor(hidden, padding_mask)
    assert alpha.shape == (2, 6) and alpha.dtype == torch.float32
    torch.testing.assert_close(alpha, _predictor_oracle(predictor, hidden, padding_mask))
    assert (alpha[padding_mask] == 0).all() and (
        (alpha[~padding_mask] > 0) & (alpha[~padding_mask] < 1)
    ).all()


def test_weight_predictor_defaults_are_the_papers():
    predictor = CifWeightPredictor(8)
    assert predictor.predictor_type == "conv"
    assert predictor.conv.kernel_size == (3,) and predictor.conv.out_channels == 256
    assert predictor.dropout.p == 0.2
    assert CifWeightPredictor(8, "dense").dense.out_features == 256


def test_weight_predictor_paper_parameter_count():
    predictor = CifWeightPredictor(256, "conv", conv_width=3, conv_channels=256)
    assert (
        sum(p.numel() for p in predictor.parameters()) == 196_864 + 257
    )  # conv 256x256x3 + bias, linear 256 + bias


def test_bad_options_and_shapes_are_rejected():
    with pytest.raises(ValueError, match="predictor_type"):
        CifWeightPredictor(8, "lstm")
    with pytest.raises(ValueError, match="odd"):
        CifWeightPredictor(8, "conv", conv_width=4)
    with pytest.raises(ValueError, match="threshold"):
        integrate_and_fire(torch.randn(1, 2, 3), torch.rand(1, 2), threshold=0.0)
    with pytest.raises(ValueError, match=r"expected non-empty hidden \(B, T, C\) and alpha \(B, T\), got"):
        integrate_and_fire(torch.randn(2, 0, 3), torch.rand(2, 0))
    with pytest.raises(ValueError, match="alpha"):
        integrate_and_fire(torch.randn(2, 4, 3), torch.rand(2, 5))


def test_cif_module_scales_in_training_and_handles_tail_in_eval():
    torch.manual_seed(2)
    cif = Cif(CifWeightPredictor(8, "linear"), input_dim=8, output_dim=6, tail_threshold=0.5)
    hidden = torch.randn(3, 20, 8)
    target_lengths = torch.tensor([4, 7, 2])
    predicted = []
    hook = cif.weight_predictor.register_forward_hook(lambda module, inputs, output: predicted.append(output))
    trained = cif.train()(hidden, target_lengths=target_lengths)
    hook.remove()
    # The quantity loss needs the predictor's own weights, not the scaled ones (which sum to the target).
    torch.testing.assert_close(trained.quantity, predicted[0].sum(1))
    assert ((trained.quantity - target_lengths).abs() > 0.1).all()
    assert torch.equal(trained.fire_counts, target_lengths)
    torch.testing.assert_close(trained.alpha.sum(1), target_lengths.float(), atol=1e-5, rtol=0)
    assert trained.cif_out.shape == (3, 7, 6)
    evaluated = cif.eval()(hidden, target_lengths=target_lengths, tail_threshold=0.0)
    torch.testing.assert_close(evaluated.quantity, evaluated.alpha.sum(1))
    expected = integrate_and_fire(hidden, evaluated.alpha, tail_threshold=0.0)
    assert torch.equal(evaluated.fire_counts, expected.fire_counts)


def test_cif_module_without_tail_handling_drops_the_partial_last_token():
    torch.manual_seed(5)
    cif = Cif(CifWeightPredictor(8, "linear"), input_dim=8, apply_tail_handling=False).eval()
    hidden = torch.randn(3, 20, 8)
    out = cif(hidden, tail_threshold=0.0)
    without_tail = integrate_and_fire(hidden, out.alpha, tail_threshold=None)
    with_tail = integrate_and_fire(hidden, out.alpha, tail_threshold=0.0)
    assert (with_tail.fire_counts > without_tail.fire_counts).all()  # every utterance has a leftover
    assert torch.equal(out.fire_counts, without_tail.fire_counts)


def test_cif_module_accepts_a_batch_padded_beyond_its_longest_utterance():
    torch.manual_seed(6)
    cif = Cif(CifWeightPredictor(8, "conv", conv_channels=4), input_dim=8).eval()
    hidden = torch.randn(2, 16, 8)
    lengths = torch.tensor([9, 12])  # frames 12..15 are padding in every row
    out = cif(hidden, lengths, tail_threshold=0.0)  # every row ends with a tail token
    assert out.alpha.shape == (2, 16) and (out.alpha[:, 12:] == 0).all()
    trimmed = cif(hidden[:, :12], lengths, tail_threshold=0.0)
    torch.testing.assert_close(out.alpha[:, :12], trimmed.alpha)
    assert torch.equal(out.fire_counts, trimmed.fire_counts)
    assert torch.equal(out.fire_frames, trimmed.fire_frames)  # a tail fires at the last valid frame
    assert (out.fire_frames.max(dim=1).values == lengths - 1).all()


def test_cif_module_uses_its_own_tail_threshold_unless_the_call_overrides_it():
    torch.manual_seed(9)
    cif = Cif(CifWeightPredictor(8, "linear"), input_dim=8, tail_threshold=0.0).eval()
    hidden = torch.randn(3, 20, 8)
    out = cif(hidden)
    with_tail = integrate_and_fire(hidden, out.alpha, tail_threshold=0.0)
    assert (with_tail.fire_counts > integrate_and_fire(hidden, out.alpha).fire_counts).all()
    assert torch.equal(out.fire_counts, with_tail.fire_counts)
    never = cif(hidden, tail_threshold=1.0)  # a leftover is always < 1
    assert torch.equal(never.fire_counts, integrate_and_fire(hidden, out.alpha).fire_counts)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_integrate_in_float32(dtype):
    hidden, alpha, lengths, padding_mask = _random_batch(400, dtype=torch.float32, max_frames=40)
    hidden, alpha = hidden.to(dtype), alpha.to(dtype)
    out = integrate_and_fire(hidden, alpha, lengths, 0.99, 0.4)
    assert out.cif_out.dtype == torch.float32
    exact = integrate_and_fire(hidden.float(), alpha.float(), lengths, 0.99, 0.4)
    assert torch.equal(out.fire_counts, exact.fire_counts)
    torch.testing.assert_close(out.cif_out, exact.cif_out, atol=1e-6, rtol=1e-6)


def test_cif_module_under_autocast_keeps_weights_float32():
    """Under bf16 autocast the weights and fired vectors stay within bfloat16 rounding of float32."""
    torch.manual_seed(8)
    cif = Cif(CifWeightPredictor(8, "conv", conv_channels=8), input_dim=8).eval()
    hidden = torch.randn(2, 10, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cif(hidden)
    assert out.alpha.dtype == torch.float32 and out.quantity.dtype == torch.float32
    exact = cif(hidden)
    torch.testing.assert_close(out.alpha, exact.alpha, atol=1e-2, rtol=1e-2)
    torch.testing.assert_close(out.quantity, exact.quantity, atol=2e-2, rtol=1e-2)
    assert torch.equal(out.fire_counts, exact.fire_counts)
    torch.testing.assert_close(out.cif_out.float(), exact.cif_out, atol=3e-2, rtol=2e-2)


def test_gradcheck():
    hidden, alpha, lengths, _ = _random_batch(500, max_batch=2, max_frames=6, channels=2)
    torch.autograd.gradcheck(
        lambda h, a: integrate_and_fire(h, a, lengths, 0.99, 0.3).cif_out,
        (hidden.requires_grad_(True), alpha.requires_grad_(True)),
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    hidden, alpha, lengths, padding_mask = _random_batch(600, dtype=torch.float32, max_frames=64, channels=16)
    cpu = integrate_and_fire(hidden, alpha, lengths, 0.99, 0.4)
    gpu = integrate_and_fire(hidden.cuda(), alpha.cuda(), lengths.cuda(), 0.99, 0.4)
    assert torch.equal(gpu.fire_counts.cpu(), cpu.fire_counts)
    assert torch.equal(gpu.fire_frames.cpu(), cpu.fire_frames)
    torch.testing.assert_close(gpu.cif_out.cpu(), cpu.cif_out, atol=1e-5, rtol=1e-5)


def test_standalone_example_learns():
    namespace = runpy.run_path(str(REPO_ROOT / "examples" / "cif_standalone.py"))
    losses = namespace["train"](steps=30, seed=0)
    assert losses[-1] < 0.5 * losses[0]

"""The ASG operator against brute-force enumeration of every label path, gradcheck, and CUDA = CPU."""

import itertools
import re
import sys

import pytest
import torch
from fairseq.data import Dictionary

from cif_plugin.ops.asg import (
    asg_log_partitions,
    asg_loss,
    asg_token_spans,
    asg_viterbi,
    collapse_repeats,
    pack_replabels,
    reference_log_partitions,
    replabel_ids,
    unpack_replabels,
)
from cif_plugin.ops.asg.asg_loss import native_extension

IMPLEMENTATIONS = ["native", "python"]


def _path_score(emissions, transitions, path):
    """sum_t E[t, path_t] + sum_t A[path_t, path_t-1] of one utterance's (T, C) emissions."""
    total = sum(emissions[t, label] for t, label in enumerate(path))
    return total + sum(transitions[path[t], path[t - 1]] for t in range(1, len(path)))


def _brute_force_partitions(emissions, transitions, targets, input_lengths, target_lengths):
    """(B,) log Z of both lattices by enumerating every label path and every state sequence (autograd)."""
    fully_connected, force_aligned = [], []
    labels = emissions.size(2)
    for b in range(len(emissions)):
        frames, length = int(input_lengths[b]), int(target_lengths[b])
        e, y = emissions[b], targets[b, :length].tolist()
        paths = itertools.product(range(labels), repeat=frames)
        fully_connected.append(
            torch.logsumexp(torch.stack([_path_score(e, transitions, p) for p in paths]), 0)
        )
        aligned = [
            _path_score(e, transitions, [y[s] for s in states])
            for states in itertools.product(range(length), repeat=frames)
            if states[0] == 0
            and states[-1] == length - 1
            and all(states[t] - states[t - 1] in (0, 1) for t in range(1, frames))
        ]
        force_aligned.append(torch.logsumexp(torch.stack(aligned), 0))
    return torch.stack(fully_connected), torch.stack(force_aligned)


def _batch(seed, batch=4, frames=5, labels=3, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    emissions = torch.randn(batch, frames, labels, generator=generator, dtype=dtype) * 2
    transitions = torch.randn(labels, labels, generator=generator, dtype=dtype)
    input_lengths = torch.tensor([frames, frames - 1, 3, 2][:batch])
    target_lengths = torch.tensor([3, 2, 3, 1][:batch])
    targets = torch.randint(0, labels, (batch, 3), generator=generator)
    targets[0, :2] = 1  # a repeated label: two states, one symbol
    return emissions, transitions, targets, input_lengths, target_lengths


@pytest.mark.parametrize("seed", range(5))
def test_log_partitions_equal_brute_force(seed):
    batch = _batch(seed)
    expected_fc, expected_fa = _brute_force_partitions(*batch)
    for fully_connected, force_aligned in (asg_log_partitions(*batch), reference_log_partitions(*batch)):
        torch.testing.assert_close(fully_connected, expected_fc, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(force_aligned, expected_fa, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("scale_mode", ["none", "target_size", "target_size_sqrt"])
def test_loss_and_gradients_equal_brute_force(implementation, reduction, scale_mode):
    emissions, transitions, targets, input_lengths, target_lengths = _batch(7)
    weights = torch.tensor([0.3, -1.2, 0.7, 2.0], dtype=torch.float64)  # a different upstream gradient each

    def run(function):
        e, a = emissions.clone().requires_grad_(), transitions.clone().requires_grad_()
        losses = function(e, a)
        (losses * weights).sum().backward() if losses.dim() else losses.backward()
        return losses.detach(), e.grad, a.grad

    scale = {
        "none": torch.ones(4, dtype=torch.float64),
        "target_size": 1.0 / target_lengths.double(),
        "target_size_sqrt": target_lengths.double().rsqrt(),
    }[scale_mode]

    def brute(e, a):
        fully_connected, force_aligned = _brute_force_partitions(e, a, targets, input_lengths, target_lengths)
        losses = (fully_connected - force_aligned) * scale
        return {"none": losses, "sum": losses.sum(), "mean": losses.mean()}[reduction]

    def operator(e, a):
        return asg_loss(
            e, a, targets, input_lengths, target_lengths, reduction, scale_mode, implementation=implementation
        )

    for got, expected in zip(run(operator), run(brute), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)


def test_gradcheck_of_the_native_operator():
    emissions, transitions, targets, input_lengths, target_lengths = _batch(11, frames=6, labels=4)
    emissions.requires_grad_()
    transitions.requires_grad_()

    def loss(e, a):
        return asg_loss(e, a, targets, input_lengths, target_lengths, "none", "target_size_sqrt")

    assert torch.autograd.gradcheck(loss, (emissions, transitions))


def test_long_peaked_inputs_stay_exact():
    """Per-frame normalisation: logits far apart over many frames neither underflow nor overflow."""
    generator = torch.Generator().manual_seed(3)
    emissions = torch.randn(2, 120, 12, generator=generator, dtype=torch.float64) * 30
    transitions = torch.randn(12, 12, generator=generator, dtype=torch.float64) * 5
    targets = torch.randint(0, 12, (2, 40), generator=generator)
    lengths, target_lengths = torch.tensor([120, 77]), torch.tensor([40, 25])
    native = asg_log_partitions(emissions, transitions, targets, lengths, target_lengths)
    reference = reference_log_partitions(emissions, transitions, targets, lengths, target_lengths)
    for got, expected in zip(native, reference, strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-6)
    single = asg_loss(emissions.float(), transitions.float(), targets, lengths, target_lengths, "none")
    double = asg_loss(emissions, transitions, targets, lengths, target_lengths, "none")
    torch.testing.assert_close(single.double(), double, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_utterances_without_an_aligned_path(implementation):
    emissions, transitions, targets, _, _ = _batch(2)
    emissions.requires_grad_()
    input_lengths, target_lengths = (
        torch.tensor([2, 5, 5, 0]),
        torch.tensor([3, 0, 2, 1]),
    )  # L > T, L = 0, ok, T = 0
    losses = asg_loss(
        emissions, transitions, targets, input_lengths, target_lengths, "none", implementation=implementation
    )
    assert torch.isinf(losses[[0, 1, 3]]).all() and torch.isfinite(losses[2])
    zeroed = asg_loss(
        emissions, transitions, targets, input_lengths, target_lengths, "none", zero_infinity=True,
        implementation=implementation,
    )  # fmt: skip
    zeroed.sum().backward()
    assert (zeroed[[0, 1, 3]] == 0).all() and zeroed[2] == losses[2]
    assert (emissions.grad[[0, 1, 3]] == 0).all() and emissions.grad[2].abs().sum() > 0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_one_frame_and_one_label_is_aligned(implementation):
    emissions, transitions, targets, _, _ = _batch(23, batch=2)
    input_lengths, target_lengths = torch.tensor([1, 5]), torch.tensor([1, 1])
    losses = asg_loss(
        emissions, transitions, targets, input_lengths, target_lengths, "none", implementation=implementation
    )
    fully_connected, force_aligned = _brute_force_partitions(
        emissions, transitions, targets, input_lengths, target_lengths
    )
    torch.testing.assert_close(losses, fully_connected - force_aligned)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_mixed_dtypes_and_int32_lengths(implementation):
    """Transitions follow the emissions' dtype (gradients come back in each input's own dtype);
    int32 targets and lengths (as a data loader may give them) are read as int64."""
    emissions, transitions, targets, input_lengths, target_lengths = _batch(24)
    expected = asg_loss(
        emissions, transitions, targets, input_lengths, target_lengths, "none", implementation=implementation
    )
    single = transitions.float().requires_grad_()
    losses = asg_loss(
        emissions, single, targets.int(), input_lengths.int(), target_lengths.int(), "none",
        implementation=implementation,
    )  # fmt: skip
    assert losses.dtype == torch.float64
    torch.testing.assert_close(losses, expected, rtol=1e-6, atol=1e-6)
    losses.sum().backward()
    assert single.grad.dtype == torch.float32
    single_emissions = asg_loss(
        emissions.float(), transitions, targets, input_lengths, target_lengths, "none",
        implementation=implementation,
    )  # fmt: skip
    assert single_emissions.dtype == torch.float32


def test_bad_options_are_named():
    batch = _batch(25)
    with pytest.raises(
        ValueError,
        match=re.escape("scale_mode must be one of ('none', 'target_size', 'target_size_sqrt'), got 'sqrt'"),
    ):
        asg_loss(*batch, scale_mode="sqrt")
    with pytest.raises(ValueError, match=re.escape("reduction must be 'none', 'sum' or 'mean', got 'max'")):
        asg_loss(*batch, reduction="max")
    message = "implementation must be 'native' or 'python', got 'cuda'"
    with pytest.raises(ValueError, match=re.escape(message)):
        asg_loss(*batch, implementation="cuda")


def test_replabel_ids_name_the_missing_symbols():
    dictionary = Dictionary()
    for symbol in ("a", "2", "b"):
        dictionary.add_symbol(symbol)
    assert replabel_ids(dictionary, 0) == []
    message = (
        "--max-replabel 3 needs the symbols ['1', '3'] in the dictionary: add lines '1 1' ... to dict.txt "
        "(before training), or pass --max-replabel 0"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        replabel_ids(dictionary, 3)
    dictionary.add_symbol("1")
    assert replabel_ids(dictionary, 2) == [dictionary.index("1"), dictionary.index("2")]


def test_time_major_and_half_precision_inputs():
    emissions, transitions, targets, input_lengths, target_lengths = _batch(4, dtype=torch.float32)
    expected = asg_loss(emissions, transitions, targets, input_lengths, target_lengths, "none")
    time_major = asg_loss(
        emissions.transpose(0, 1),
        transitions,
        targets,
        input_lengths,
        target_lengths,
        "none",
        batch_first=False,
    )
    torch.testing.assert_close(time_major, expected)
    for dtype in (torch.float16, torch.bfloat16):
        low = emissions.to(dtype)
        losses = asg_loss(low, transitions, targets, input_lengths, target_lengths, "none")
        assert losses.dtype == torch.float32
        torch.testing.assert_close(
            losses, asg_loss(low.float(), transitions, targets, input_lengths, target_lengths, "none")
        )


def test_a_label_outside_the_vocabulary_is_named():
    emissions, transitions, targets, input_lengths, target_lengths = _batch(1)
    targets[1, 0] = 9
    with pytest.raises(RuntimeError, match="target 9 of utterance 1"):
        asg_loss(emissions, transitions, targets, input_lengths, target_lengths)


def test_viterbi_equals_the_best_enumerated_path():
    emissions, transitions, _, input_lengths, _ = _batch(9, labels=4)
    paths, scores = asg_viterbi(emissions, transitions, input_lengths)
    for b, frames in enumerate(input_lengths.tolist()):
        enumerated = {
            path: float(_path_score(emissions[b], transitions, path))
            for path in itertools.product(range(4), repeat=frames)
        }
        best = max(enumerated, key=enumerated.get)
        assert paths[b] == list(best)
        assert scores[b].item() == pytest.approx(enumerated[best], rel=1e-5)


def test_replabels_round_trip_and_wav2letter_examples():
    one, two = 101, 102
    assert pack_replabels([5, 5, 5, 5, 6, 6, 7], [one, two]) == [5, two, 5, 6, one, 7]
    assert pack_replabels([5, 5, 5], [one]) == [5, one, 5]
    assert collapse_repeats([5, 5, 102, 102, 5, 6, 6, 101]) == [5, 102, 5, 6, 101]
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        tokens = torch.randint(
            3, 6, (int(torch.randint(0, 12, (1,), generator=generator)),), generator=generator
        )
        for replabels in ([], [one], [one, two]):
            packed = pack_replabels(tokens.tolist(), replabels)
            assert unpack_replabels(packed, replabels) == tokens.tolist()
            assert all(a != b for a, b in zip(packed, packed[1:], strict=False)) or not replabels


def test_token_spans_tile_the_path_and_spell_the_unpacked_tokens():
    one, two = 101, 102
    spans = asg_token_spans([5, 5, 7, one, one], [one])
    assert [(s.label, s.start, s.end) for s in spans] == [(5, 0, 2), (7, 2, 3), (7, 3, 5)]
    # "2" = two repetitions over three frames: integer frame bounds, split 1 + 2.
    spans = asg_token_spans([5, two, two, two], [one, two])
    assert [(s.label, s.start, s.end) for s in spans] == [(5, 0, 1), (5, 1, 2), (5, 2, 4)]
    assert all(isinstance(v, int) for s in spans for v in (s.start, s.end))
    generator = torch.Generator().manual_seed(1)
    labels = torch.tensor([5, 6, one, two])
    for _ in range(300):
        frames = int(torch.randint(0, 15, (1,), generator=generator))
        path = labels[torch.randint(0, 4, (frames,), generator=generator)].tolist()
        for replabels in ([], [one], [one, two]):
            spans = asg_token_spans(path, replabels)
            assert [s.label for s in spans] == unpack_replabels(collapse_repeats(path), replabels)
            assert all(0 <= s.start <= s.end <= len(path) for s in spans)  # k repeats may share one frame
            assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False))


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("labels", [3, 30, 300])
def test_cuda_operator_equals_the_cpu_operator(dtype, labels):
    generator = torch.Generator().manual_seed(labels)
    batch, frames, states = 6, 90, 40
    emissions = torch.randn(batch, frames, labels, generator=generator, dtype=dtype) * 3
    transitions = torch.randn(labels, labels, generator=generator, dtype=dtype)
    targets = torch.randint(0, labels, (batch, states), generator=generator)
    input_lengths = torch.tensor([90, 80, 41, 60, 5, 90])
    target_lengths = torch.tensor([40, 12, 40, 1, 7, 33])  # the fifth has L > T

    def run(device):
        e = emissions.to(device).requires_grad_()
        a = transitions.to(device).requires_grad_()
        targets_, lengths = targets.to(device), input_lengths.to(device)
        losses = asg_loss(
            e, a, targets_, lengths, target_lengths.to(device), "none", "target_size_sqrt", zero_infinity=True
        )
        (losses * torch.arange(1, batch + 1, device=device)).sum().backward()
        return [x.cpu() for x in (losses, e.grad, a.grad)]

    tolerance = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-9, atol=1e-9)
    for got, expected in zip(run("cuda"), run("cpu"), strict=True):
        torch.testing.assert_close(got, expected, **tolerance)


@cuda
def test_cuda_log_partitions_equal_brute_force():
    batch = _batch(5)
    expected = _brute_force_partitions(*batch)
    got = asg_log_partitions(*(x.cuda() for x in batch))
    for value, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(value.cpu(), reference, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("needs_grad", ["emissions", "transitions"])
def test_native_gradient_of_one_input_alone(needs_grad):
    """Frozen emissions (or transitions) still give the other input its full gradient."""
    emissions, transitions, targets, input_lengths, target_lengths = _batch(21)
    both = (emissions.clone().requires_grad_(True), transitions.clone().requires_grad_(True))
    asg_loss(*both, targets, input_lengths, target_lengths).backward()
    one = (
        emissions.clone().requires_grad_(needs_grad == "emissions"),
        transitions.clone().requires_grad_(needs_grad == "transitions"),
    )
    asg_loss(*one, targets, input_lengths, target_lengths).backward()
    index = 0 if needs_grad == "emissions" else 1
    torch.testing.assert_close(one[index].grad, both[index].grad)
    assert one[1 - index].grad is None


def test_a_missing_extension_says_how_to_build_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cif_plugin.ops.asg._asg_cpu", None)  # as if it were not built
    expected = (
        r"^the ASG extension _asg_cpu is not built \(.*\): run `make install` \(pip install -e \. builds it; "
        r"the CUDA one needs CUDA_HOME or nvcc\), or use the pure-PyTorch implementation "
        r"\(implementation='python', --asg-implementation python\)$"
    )
    with pytest.raises(ImportError, match=expected):
        native_extension(torch.device("cpu"))


def test_reference_ignores_whatever_pads_the_targets():
    emissions, transitions, targets, input_lengths, target_lengths = _batch(22)
    padded_with_zero = targets.clone()
    padded_with_junk = targets.clone()
    for b, length in enumerate(target_lengths.tolist()):
        padded_with_zero[b, length:] = 0
        padded_with_junk[b, length:] = torch.tensor([-1, 7, 99])[: 3 - length]
    expected = reference_log_partitions(
        emissions, transitions, padded_with_zero, input_lengths, target_lengths
    )
    found = reference_log_partitions(emissions, transitions, padded_with_junk, input_lengths, target_lengths)
    for a, b in zip(found, expected, strict=True):
        torch.testing.assert_close(a, b)

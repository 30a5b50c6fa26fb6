"""The cif criterion, term by term, against hand computations on a tiny batch."""

import copy
import math

import pytest
import torch
from fairseq import metrics
from fairseq import utils as fairseq_utils

from cif_plugin.criterions.cif_losses import cross_entropy_sum, teacher_forced_predictions
from cif_plugin.criterions.error_rates import edit_errors

from fairseq_setup import build_from_command_line

EPSILON = 0.1


@pytest.fixture(scope="module")
def setup(tiny_data):
    cfg, task, model, criterion = build_from_command_line(
        tiny_data, "s2t_cif_transformer_tiny", ["--ctc-loss-lambda", "0.5", "--apply-label-smoothing"]
    )
    task.load_dataset("train")
    dataset = task.datasets["train"]
    sample = dataset.collater([dataset[i] for i in range(5)])
    return task, model.eval(), criterion, sample


def _levenshtein(a, b):
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (x != y))
    return row[-1]


def _hand_terms(net_output, sample, dictionary):
    """Every term with explicit per-utterance loops (built-in CTC called one utterance at a time)."""
    target, lengths = sample["target"], sample["target_lengths"]
    pad, vocab = dictionary.pad(), len(dictionary)
    ctc = 0.0
    for b in range(target.size(0)):
        frames = int(net_output["encoder_lengths"][b])
        log_probs = torch.log_softmax(net_output["ctc_logits"][b, :frames].double(), -1).unsqueeze(1)
        labels = target[b, : lengths[b]]  # </s> included, as the reference trains it
        assert labels[-1] == dictionary.eos()
        ctc += torch.nn.functional.ctc_loss(
            log_probs,
            labels.unsqueeze(0),
            [frames],
            [int(lengths[b])],
            blank=dictionary.bos(),
            reduction="sum",
        ).item()
    quantity = sum(
        abs(net_output["alpha"][b].sum().item() - lengths[b].item()) for b in range(target.size(0))
    )
    smoothed = nll = 0.0
    logits = net_output["decoder_logits"]
    eps_i = EPSILON / (vocab - 1)
    for b in range(target.size(0)):
        for i in range(min(logits.size(1), target.size(1))):
            if target[b, i] == pad:
                continue
            log_probs = torch.log_softmax(logits[b, i].double(), -1)
            token_nll, token_smooth = -log_probs[target[b, i]].item(), -log_probs.sum().item()
            nll += token_nll
            smoothed += (1 - EPSILON - eps_i) * token_nll + eps_i * token_smooth
    return {"ctc_loss": ctc, "quantity_loss": quantity, "ce_loss": smoothed, "nll": nll}


def test_each_term_and_the_total_match_hand_computation(setup):
    task, model, criterion, sample = setup
    with torch.no_grad():
        loss, sample_size, log = criterion(model, sample)
        net_output = model(**sample["net_input"], target_lengths=sample["target_lengths"])
    hand = _hand_terms(net_output, sample, task.target_dictionary)
    assert sample_size == sample["ntokens"] == int(sample["target_lengths"].sum())
    assert log["ctc_loss"] == pytest.approx(hand["ctc_loss"], rel=1e-5)
    assert log["quantity_loss"] == pytest.approx(hand["quantity_loss"], rel=1e-5)
    assert log["ce_loss"] == pytest.approx(hand["nll"], rel=1e-5)  # logged unsmoothed, as the reference
    expected = hand["ce_loss"] + 0.5 * hand["ctc_loss"] + 1.0 * hand["quantity_loss"]
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_training_quantity_loss_uses_the_weight_predictors_own_weights(setup):
    """In training the CIF integrates weights scaled to the target length; the quantity loss must
    compare the predictor's unscaled weights with the target (on the scaled ones it would be ~0)."""
    _, model, criterion, sample = setup
    predicted = []
    hook = model.cif.weight_predictor.register_forward_hook(
        lambda module, args, output: predicted.append(output)
    )
    try:
        with torch.no_grad():
            _, _, log = criterion(model.train(), sample)
    finally:
        hook.remove()
        model.eval()
    expected = (predicted[0].double().sum(1) - sample["target_lengths"].double()).abs().sum().item()
    assert log["quantity_loss"] == pytest.approx(expected, rel=1e-5)
    assert expected > 1.0


def test_validation_error_counts_match_hand_decoding(setup):
    task, model, criterion, sample = setup
    dictionary = task.target_dictionary
    with torch.no_grad():
        _, _, log = criterion(model, sample)
        net_output = model(**sample["net_input"])
    dropped = {dictionary.bos(), dictionary.pad(), dictionary.eos()}
    errors = total = 0
    for b in range(sample["target"].size(0)):
        count = min(int(net_output["fire_counts"][b]), net_output["decoder_logits"].size(1))
        hypothesis = [
            t for t in net_output["decoder_logits"][b, :count].argmax(-1).tolist() if t not in dropped
        ]
        reference = [t for t in sample["target"][b].tolist() if t not in dropped]
        errors, total = errors + _levenshtein(hypothesis, reference), total + len(reference)
    assert (log["c_errors"], log["c_total"]) == (errors, total)
    assert (log["w_errors"], log["w_total"]) == (errors, total)  # characters are the words
    with metrics.aggregate() as aggregator:
        criterion.reduce_metrics([log])
    assert aggregator.get_smoothed_values()["uer"] == pytest.approx(100.0 * errors / total, abs=1e-3)
    assert aggregator.get_smoothed_values()["loss"] == pytest.approx(
        log["loss"] / log["sample_size"] / math.log(2), abs=1e-3
    )


def test_disabled_terms_leave_the_loss(tiny_data, setup):
    _, model, _, sample = setup
    _, _, _, criterion = build_from_command_line(
        tiny_data, "s2t_cif_transformer_tiny", ["--no-ctc-loss", "--no-quantity-loss"]
    )
    with torch.no_grad():
        loss, _, log = criterion(model, sample)
    assert "ctc_loss" not in log and "quantity_loss" not in log
    assert loss.item() == pytest.approx(log["ce_loss"], rel=1e-6)  # no smoothing: CE is the NLL


def _without_dropout(model):
    for module in model.modules():
        if hasattr(module, "p") and isinstance(module.p, float):
            module.p = 0.0
    return model


def test_bfloat16_model_trains_with_float32_losses(tiny_data, setup):
    """What --bf16 does: the model and the sample's float tensors in bfloat16. Its losses and
    gradients stay within bfloat16 rounding of a float32 run with the same (rounded) weights."""
    _, _, _, sample = setup
    _, _, model, criterion = build_from_command_line(
        tiny_data, "s2t_cif_transformer_tiny", ["--ctc-loss-lambda", "0.5", "--apply-label-smoothing"]
    )
    model = _without_dropout(model.to(torch.bfloat16).train())
    reference = copy.deepcopy(model).float()
    rounded = fairseq_utils.apply_to_sample(
        lambda t: t.to(torch.bfloat16) if t.is_floating_point() else t, sample
    )
    loss, _, log = criterion(model, rounded)
    loss.backward()
    assert loss.dtype == torch.float32 and math.isfinite(loss.item())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    widened = fairseq_utils.apply_to_sample(lambda t: t.float() if t.is_floating_point() else t, rounded)
    reference_loss, _, reference_log = criterion(reference, widened)
    reference_loss.backward()
    for name in ("ctc_loss", "quantity_loss", "ce_loss", "loss"):
        assert log[name] == pytest.approx(reference_log[name], rel=0.01), name
    gradient = torch.cat([p.grad.float().flatten() for p in model.parameters()])
    reference_gradient = torch.cat([p.grad.flatten() for p in reference.parameters()])
    cosine = torch.nn.functional.cosine_similarity(gradient, reference_gradient, dim=0)
    assert cosine > 0.99, "bfloat16 gradients point elsewhere than float32 ones"


@pytest.mark.parametrize("steps", [2, 3, 5])
def test_cross_entropy_covers_the_shorter_of_decoder_steps_and_targets(steps):
    """The decoder runs as many steps as the CIF fired, which may be fewer or more than the targets."""
    torch.manual_seed(steps)
    logits, targets, pad = torch.randn(2, steps, 7), torch.tensor([[3, 4, 5], [6, 2, 1]]), 1
    smoothed, nll = cross_entropy_sum(logits, targets, pad, label_smoothing=0.1)
    log_probs = torch.log_softmax(logits.double(), -1)
    expected_nll = expected_smoothed = 0.0
    for b in range(2):
        for i in range(min(steps, 3)):
            if targets[b, i] == pad:
                continue
            token_nll = -log_probs[b, i, targets[b, i]].item()
            expected_nll += token_nll
            eps_i = 0.1 / (7 - 1)
            expected_smoothed += (1 - 0.1 - eps_i) * token_nll + eps_i * -log_probs[b, i].sum().item()
    assert nll.item() == pytest.approx(expected_nll, rel=1e-5)
    assert smoothed.item() == pytest.approx(expected_smoothed, rel=1e-5)


def test_teacher_forced_predictions_and_edit_errors():
    logits = torch.full((2, 4, 6), -5.0)
    for b, row in enumerate([[4, 0, 5, 2], [5, 5, 4, 1]]):
        for i, token in enumerate(row):
            logits[b, i, token] = 5.0
    predictions = teacher_forced_predictions(logits, torch.tensor([4, 2]), drop=[0, 1, 2])
    assert predictions == [[4, 5], [5, 5]]
    # More fires than decoder positions: every position counts, and no more.
    assert teacher_forced_predictions(logits, torch.tensor([5, 9]), drop=[0, 1, 2]) == [[4, 5], [5, 5, 4]]
    assert edit_errors(predictions, [[4, 5, 5], [5]]) == (2, 4)

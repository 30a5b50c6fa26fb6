"""The CTC model and criterion: loss against a brute-force path sum, greedy decoding, training."""

import itertools
import math
import subprocess

import pytest
import torch

from cif_plugin.ops.ctc import (
    ctc_best_path_scores,
    ctc_greedy_spans,
    ctc_greedy_tokens,
    ctc_loss_sum,
    ctc_prefix_beam_search,
)

from decoded_text import assert_same_decoding, ctc_search, decode_in_process, printed_hypotheses
from fairseq_setup import build_from_command_line, fairseq_cli

PAD, BLANK = 1, 0


def _collapse(path):
    labels, previous = [], None
    for label in path:
        if label != previous and label != BLANK:
            labels.append(label)
        previous = label
    return labels


def test_ctc_loss_equals_the_sum_over_all_alignment_paths():
    torch.manual_seed(0)
    vocab, frames = 4, 5  # labels 2 and 3 (1 is padding, never a label)
    logits = torch.randn(2, frames, vocab, dtype=torch.float64)
    frame_counts = torch.tensor([5, 4])
    labels = torch.tensor([[2, 3, 3], [3, PAD, PAD]])
    lengths = torch.tensor([3, 1])
    loss = ctc_loss_sum(logits, frame_counts, labels, lengths, pad=PAD, blank=BLANK)
    expected = 0.0
    for b in range(2):
        valid = int(frame_counts[b])
        log_probs = torch.log_softmax(logits[b, :valid], dim=-1)
        target = labels[b, : lengths[b]].tolist()
        total = sum(
            math.exp(sum(log_probs[t, path[t]].item() for t in range(valid)))
            for path in itertools.product(range(vocab), repeat=valid)
            if _collapse(path) == target
        )
        expected += -math.log(total)
    assert loss.item() == pytest.approx(expected, rel=1e-9)


def test_ctc_loss_with_another_blank_and_an_impossible_utterance():
    """Blank index 3 (not 0), float16 logits in float32, and an utterance with fewer frames than its
    labels need: zero by default (its infinite loss dropped), infinite without zero_infinity."""
    torch.manual_seed(1)
    logits = torch.randn(2, 4, 5, dtype=torch.float16)
    labels = torch.tensor([[1, 2, 4], [0, 1, 2]])
    frames, lengths = torch.tensor([4, 2]), torch.tensor([2, 3])  # row 1: 3 labels in 2 frames
    log_probs = torch.log_softmax(logits.float(), -1)
    possible = torch.nn.functional.ctc_loss(
        log_probs[0, :4].unsqueeze(1), labels[:1, :2], [4], [2], blank=3, reduction="sum"
    )
    loss = ctc_loss_sum(logits, frames, labels, lengths, pad=4, blank=3)
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(possible.item(), rel=1e-6)
    strict = ctc_loss_sum(logits, frames, labels, lengths, pad=4, blank=3, zero_infinity=False)
    assert math.isinf(strict.item())


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    best = [[2, 2, 0, 2, 3, 3, 0], [0, 3, 0, 0, 3, 3, 2]]
    logits = torch.nn.functional.one_hot(torch.tensor(best), 4).float()
    assert ctc_greedy_tokens(logits, torch.tensor([7, 6]), blank=0) == [[2, 2, 3], [3, 3]]
    spans = ctc_greedy_spans(logits, torch.tensor([7, 6]), blank=0)
    assert [[(s.label, s.start, s.end) for s in row] for row in spans] == [
        [(2, 0, 2), (2, 3, 4), (3, 4, 6)],
        [(3, 1, 2), (3, 4, 6)],
    ]


def test_best_path_score_is_the_sum_of_the_frame_maxima_over_valid_frames():
    """Greedy CTC hypotheses are scored by their own path: the best path's probability, padding left out."""
    torch.manual_seed(6)
    log_probs = torch.log_softmax(torch.randn(3, 6, 5, dtype=torch.float64), dim=-1)
    lengths = torch.tensor([6, 2, 4])
    expected = [sum(max(log_probs[b, t].tolist()) for t in range(int(lengths[b]))) for b in range(3)]
    assert ctc_best_path_scores(log_probs, lengths) == pytest.approx(expected, rel=1e-12)


def test_paper_ctc_model_size(aishell_data):
    _, _, model, _ = build_from_command_line(aishell_data, "s2t_ctc_conformer", ["--criterion", "ctc_asr"])
    assert sum(p.numel() for p in model.parameters()) == 40_862_720 + 1_088_138  # encoder + CTC layer


def test_criterion_is_the_built_in_ctc_on_labels_without_eos(tiny_data):
    _, task, model, criterion = build_from_command_line(
        tiny_data, "s2t_ctc_conformer_tiny", ["--criterion", "ctc_asr"]
    )
    task.load_dataset("train")
    dataset = task.datasets["train"]
    sample = dataset.collater([dataset[i] for i in range(4)])
    model.eval()
    with torch.no_grad():
        loss, sample_size, log = criterion(model, sample)
        output = model(**sample["net_input"])
    expected = 0.0
    for b in range(4):
        frames = int(output["encoder_lengths"][b])
        labels = [t for t in sample["target"][b].tolist() if t not in (PAD, task.target_dictionary.eos())]
        log_probs = torch.log_softmax(output["ctc_logits"][b, :frames].double(), -1).unsqueeze(1)
        expected += torch.nn.functional.ctc_loss(
            log_probs,
            torch.tensor([labels]),
            [frames],
            [len(labels)],
            blank=BLANK,
            reduction="sum",
            zero_infinity=True,
        ).item()
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert sample_size == int(sample["target_lengths"].sum()) - 4  # tokens without </s>
    assert log["c_total"] == sample_size


def test_fairseq_train_ctc_model(ctc_training):
    log, checkpoint = ctc_training
    assert "valid on 'dev' subset" in log and "| uer " in log and checkpoint.is_file()


def test_prefix_beam_search_equals_exhaustive_search():
    torch.manual_seed(4)
    frames, vocab = 5, 3
    log_probs = torch.log_softmax(torch.randn(frames, vocab, dtype=torch.float64) * 2, dim=-1)
    by_labels = {}
    for path in itertools.product(range(vocab), repeat=frames):
        labels = tuple(_collapse(path))
        probability = math.exp(sum(log_probs[t, path[t]].item() for t in range(frames)))
        by_labels[labels] = by_labels.get(labels, 0.0) + probability
    exhaustive = sorted(by_labels.items(), key=lambda item: -item[1])[:4]
    found = ctc_prefix_beam_search(log_probs, blank=BLANK, beam=vocab**frames)[:4]
    assert [labels for labels, _ in found] == [labels for labels, _ in exhaustive]
    for (_, score), (_, probability) in zip(found, exhaustive, strict=True):
        assert score == pytest.approx(math.log(probability), rel=1e-9)


def test_fairseq_generate_with_a_ctc_model(tiny_data, ctc_training):
    generate = fairseq_cli(
        "generate", tiny_data, "--gen-subset", "dev", "--cpu", "--scoring", "wer", "--max-tokens", "4000"
    )
    generate += ["--path", str(ctc_training[1])]
    for beam, nbest in (("1", "1"), ("3", "2")):
        result = subprocess.run(generate + ["--beam", beam, "--nbest", nbest], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.count("\nT-") + result.stdout.startswith("T-") == 8
        expected = decode_in_process(ctc_training[1], tiny_data, "dev", ctc_search(int(beam), int(nbest)))
        assert_same_decoding(printed_hypotheses(result.stdout), expected)
        assert all(len(hypotheses) == int(nbest) for hypotheses in expected.values())

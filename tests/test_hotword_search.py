"""Hotword biasing inside the searches: CIF beam search and CTC prefix beam search against brute-force
enumerations scored with the brute-force context bonus, greedy = beam 1, and biasing that works."""

import itertools
import math
from collections import defaultdict

import pytest
import torch
from test_cif_generator import _brute_force_ranking
from test_context_graph import brute_force_earned
from test_ctc_lm_fusion import BigramScorer

from cif_plugin.generation import CifGenerator, CtcGenerator
from cif_plugin.ops.context_graph import ContextGraph
from cif_plugin.ops.ctc import ctc_prefix_beam_search

from fairseq_setup import build_from_command_line


@pytest.fixture(scope="module")
def cif_model(tiny_data):
    torch.manual_seed(5)
    _, task, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny")
    with torch.no_grad():
        model.decoder.output_projection.weight.mul_(3.0)
    return task, model.eval()


def _phrases(dictionary, texts, score):
    return [(tuple(dictionary.index(c) for c in text), score) for text in texts]


def test_cif_beam_search_with_hotwords_finds_the_best_of_a_brute_force_enumeration(cif_model):
    task, model = cif_model
    dictionary = task.target_dictionary
    steps, vocab = 3, len(dictionary)
    allowed = [t for t in range(vocab) if t not in (dictionary.pad(), dictionary.bos())]
    torch.manual_seed(7)
    cif = {"cif_out": torch.randn(1, steps, 64), "fire_counts": torch.tensor([steps]),
           "fire_frames": torch.arange(steps).unsqueeze(0)}  # fmt: skip
    with torch.no_grad():
        plain = _brute_force_ranking(model, cif["cif_out"], allowed, steps, dictionary.eos())
    # Hotwords from a sequence the plain search ranks in the middle, so that biasing changes the
    # ranking: a pair, one of its tokens alone, and a longer phrase that the pair starts.
    middle = next(tokens for tokens, _ in plain[len(plain) // 2 :] if len(tokens) == steps)
    phrases = [(middle[:2], 8.0), (middle[1:2], 1.0), (middle + middle[:1], 1.5)]
    ranking = sorted(
        ((tokens, score + brute_force_earned(phrases, tokens)[1]) for tokens, score in plain),
        key=lambda item: -item[1],
    )
    assert ranking[0][0] != plain[0][0]  # the bias changed the best sequence
    with torch.no_grad():
        generator = CifGenerator(
            model, dictionary, beam=vocab**2, nbest=5, context_graph=ContextGraph(phrases)
        )
        tokens, step_scores = generator.search(cif)
        hypotheses = generator._hypotheses(tokens, step_scores, cif["fire_counts"], cif["fire_frames"])[0]
    for hypothesis, (sequence, score) in zip(hypotheses, ranking[:5], strict=True):
        assert tuple(hypothesis["tokens"].tolist()) == sequence
        assert hypothesis["score"].item() == pytest.approx(score, abs=1e-4)
        bonus = brute_force_earned(phrases, sequence)[1]
        assert hypothesis["context_bonus"] == pytest.approx(bonus, abs=1e-6)
        torch.testing.assert_close(hypothesis["positional_scores"].sum(), hypothesis["score"] - bonus)


def _sample(task, count):
    task.load_dataset("dev")
    dataset = task.datasets["dev"]
    return dataset.collater([dataset[i] for i in range(count)])


def test_a_strong_hotword_is_decoded_by_greedy_search(cif_model):
    task, model = cif_model
    dictionary, sample = task.target_dictionary, _sample(task, 4)
    plain = CifGenerator(model, dictionary, beam=1).generate([model], sample)
    decoded = [h[0]["tokens"].tolist() for h in plain]
    unused = [s for s in range(dictionary.nspecial, len(dictionary)) if all(s not in d for d in decoded)]
    graph = ContextGraph([((unused[0], unused[1]), 30.0)])
    greedy = CifGenerator(model, dictionary, beam=1, context_graph=graph).generate([model], sample)
    checked = 0
    for g, p in zip(greedy, plain, strict=True):
        tokens = g[0]["tokens"].tolist()
        if len(p[0]["tokens"]) >= 3:  # room for the phrase before </s>
            assert (unused[0], unused[1]) in zip(tokens[:-1], tokens[1:], strict=True), tokens
            checked += 1
    assert checked > 0


def _brute_force_ctc(log_probs, blank):
    """log P(labels) of every label sequence: all alignments of (T, V) frames enumerated."""
    totals = defaultdict(lambda: -math.inf)
    frames, vocab = log_probs.shape
    for path in itertools.product(range(vocab), repeat=frames):
        labels = tuple(v for i, v in enumerate(path) if v != blank and (i == 0 or v != path[i - 1]))
        score = sum(log_probs[t, v].item() for t, v in enumerate(path))
        a, b = totals[labels], score
        totals[labels] = max(a, b) + math.log1p(math.exp(-abs(a - b))) if a > -math.inf else b
    return totals


def test_ctc_prefix_beam_search_with_hotwords_equals_brute_force():
    torch.manual_seed(11)
    blank, frames, vocab = 0, 5, 4
    log_probs = torch.log_softmax(2.0 * torch.randn(frames, vocab, dtype=torch.float64), dim=-1)
    totals = _brute_force_ctc(log_probs, blank)
    phrases = [((2, 3), 1.5), ((3,), 0.5), ((2, 3, 1), 2.0), ((1, 1), 1.0)]
    ranking = sorted(
        ((labels, score + brute_force_earned(phrases, labels)[1]) for labels, score in totals.items()),
        key=lambda item: -item[1],
    )
    found = ctc_prefix_beam_search(log_probs, blank, beam=200, context=ContextGraph(phrases))
    for (labels, score), (expected, expected_score) in zip(found[:6], ranking[:6], strict=True):
        assert labels == expected
        assert score == pytest.approx(expected_score, abs=1e-9)
    plain = ctc_prefix_beam_search(log_probs, blank, beam=200)
    assert [labels for labels, _ in plain[:6]] != [labels for labels, _ in found[:6]]


def test_ctc_generator_with_hotwords_runs_prefix_beam_search(ctc_training, tiny_data):
    from fairseq import checkpoint_utils

    _, checkpoint = ctc_training
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides={"data": str(tiny_data)}
    )
    model, dictionary = models[0].eval(), task.target_dictionary
    sample = _sample(task, 3)
    plain = CtcGenerator(model, dictionary, beam=1).generate([model], sample)
    first = dictionary.nspecial + 1
    graph = ContextGraph([((first,), 50.0)])
    assert not CtcGenerator(model, dictionary, beam=1, context_graph=graph).greedy
    # Prefix beam search extends with a frame's `beam` best labels only: a wide beam proposes them all.
    biased = CtcGenerator(model, dictionary, beam=len(dictionary), context_graph=graph)
    found = biased.generate([model], sample)
    for b in found:
        assert first in b[0]["tokens"].tolist()
        assert b[0]["token_spans"] is not None and len(b[0]["token_spans"]) == len(b[0]["tokens"]) - 1
    assert any(first not in p[0]["tokens"].tolist() for p in plain)


def test_fused_ctc_prefix_beam_search_with_hotwords_equals_exhaustive_search():
    torch.manual_seed(6)
    blank, frames, vocab = 0, 5, 4
    log_probs = torch.log_softmax(2.0 * torch.randn(frames, vocab, dtype=torch.float64), dim=-1)
    scorer = BigramScorer(torch.log_softmax(torch.randn(vocab + 1, vocab + 1, dtype=torch.float64) * 2, -1))
    phrases = [((2, 3), 2.0), ((3, 1), 1.0), ((1,), 0.5)]
    lm_weight, token_bonus = 0.7, 0.4

    def fused(labels, log_probability):
        contexts = (None, *labels)
        lm = sum(scorer.score(contexts[1 : i + 1], label) for i, label in enumerate(labels))
        lm += scorer.end_score(labels)
        bonus = brute_force_earned(phrases, labels)[1]
        return log_probability + lm_weight * lm + token_bonus * len(labels) + bonus

    totals = _brute_force_ctc(log_probs, blank)
    exhaustive = sorted(((labels, fused(labels, p)) for labels, p in totals.items()), key=lambda x: -x[1])
    found = ctc_prefix_beam_search(
        log_probs, blank, 300, scorer, lm_weight, token_bonus, context=ContextGraph(phrases)
    )
    assert [labels for labels, _ in found[:6]] == [labels for labels, _ in exhaustive[:6]]
    for (_, score), (_, expected) in zip(found[:6], exhaustive[:6], strict=True):
        assert score == pytest.approx(expected, abs=1e-9)

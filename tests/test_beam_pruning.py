"""Beam searches that prune (beam < vocabulary): CTC prefix beam search and CIF beam search, each
against a reference beam search written plainly here with the same pruning rule, and on peaked
inputs whose best sequence is known.

The exhaustive-search tests elsewhere use beams so wide that nothing is ever pruned; these fix which
candidates compete and which survive.
"""

import math

import pytest
import torch
from fairseq.data import Dictionary
from test_ctc_lm_fusion import BigramScorer
from test_ctc_model import BLANK

from cif_plugin.generation import CifGenerator
from cif_plugin.generation.language_models import load_fairseq_lm
from cif_plugin.generation.prefix_lm_scorers import FairseqLmPrefixScorer
from cif_plugin.ops.ctc import ctc_blank_index, ctc_prefix_beam_search

from fairseq_setup import build_from_command_line


def _reference_prefix_beam_search(log_probs, blank, beam, scorer=None, lm_weight=0.0, token_bonus=0.0):
    """Prefix beam search in probability space, one prefix and one label at a time.

    Pruning rule: at frame t only the ``beam`` most likely labels of that frame, plus the blank,
    extend a prefix; then the ``beam`` prefixes with the highest
    log P(prefix) + lm_weight * log P_lm(prefix) + token_bonus * len(prefix) survive.
    """
    probs = log_probs.exp().tolist()

    def bonus(prefix):  # the LM and length terms, from scratch
        if scorer is None or lm_weight == 0:
            return token_bonus * len(prefix)
        lm = sum(scorer.score(prefix[:i], label) for i, label in enumerate(prefix))
        return lm_weight * lm + token_bonus * len(prefix)

    beams = {(): [1.0, 0.0]}  # prefix -> [P(alignments ending in blank), P(... ending in its last label)]
    for frame in probs:
        allowed = sorted(range(len(frame)), key=lambda v: -frame[v])[:beam]
        if blank not in allowed:
            allowed.append(blank)
        grown = {}
        for prefix, (p_blank, p_label) in beams.items():
            for label in allowed:
                p = frame[label]
                if label == blank:
                    grown.setdefault(prefix, [0.0, 0.0])[0] += (p_blank + p_label) * p
                elif prefix and prefix[-1] == label:
                    grown.setdefault(prefix, [0.0, 0.0])[1] += p_label * p  # a repeat collapses
                    grown.setdefault(prefix + (label,), [0.0, 0.0])[1] += p_blank * p
                else:
                    grown.setdefault(prefix + (label,), [0.0, 0.0])[1] += (p_blank + p_label) * p

        def rank(item):
            return math.log(sum(item[1])) + bonus(item[0]) if sum(item[1]) > 0 else -math.inf

        beams = dict(sorted(grown.items(), key=rank, reverse=True)[:beam])
    final = []
    for prefix, probabilities in beams.items():
        score = math.log(sum(probabilities)) + bonus(prefix)
        if scorer is not None and lm_weight != 0:
            score += lm_weight * scorer.end_score(prefix)
        final.append((prefix, score))
    return sorted(final, key=lambda item: -item[1])


def _random_frames(seed, frames=8, vocab=6, sharpness=2.0):
    generator = torch.Generator().manual_seed(seed)
    return torch.log_softmax(
        torch.randn(frames, vocab, generator=generator, dtype=torch.float64) * sharpness, -1
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("beam", [2, 3])
def test_ctc_prefix_beam_search_prunes_like_the_reference(seed, beam):
    log_probs = _random_frames(seed)
    found = ctc_prefix_beam_search(log_probs, BLANK, beam)
    expected = _reference_prefix_beam_search(log_probs, BLANK, beam)
    assert [prefix for prefix, _ in found] == [prefix for prefix, _ in expected]
    for (_, score), (_, reference) in zip(found, expected, strict=True):
        assert score == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lm_weight, token_bonus", [(0.5, 0.0), (1.0, 0.0), (1.3, 0.4)])
def test_fused_ctc_prefix_beam_search_prunes_like_the_reference(seed, lm_weight, token_bonus):
    log_probs = _random_frames(100 + seed)
    vocab = log_probs.size(1)
    table = torch.randn(
        vocab + 1, vocab + 1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    scorer = BigramScorer(torch.log_softmax(table * 2, -1))
    found = ctc_prefix_beam_search(log_probs, BLANK, 3, scorer, lm_weight, token_bonus)
    expected = _reference_prefix_beam_search(log_probs, BLANK, 3, scorer, lm_weight, token_bonus)
    assert [prefix for prefix, _ in found] == [prefix for prefix, _ in expected]
    for (_, score), (_, reference) in zip(found, expected, strict=True):
        assert score == pytest.approx(reference, rel=1e-9)


def test_a_scorer_without_weight_or_a_weight_without_scorer_is_plain_search():
    log_probs = _random_frames(200)
    plain = ctc_prefix_beam_search(log_probs, BLANK, 3)
    scorer = BigramScorer(torch.log_softmax(torch.randn(7, 7, dtype=torch.float64), -1))
    assert ctc_prefix_beam_search(log_probs, BLANK, 3, scorer) == plain  # lm_weight defaults to 0
    assert ctc_prefix_beam_search(log_probs, BLANK, 3, None, lm_weight=0.7) == plain


class _OnePrefixAtATime:
    """A fairseq LM scored prefix by prefix, with no batching or cache: log P(label | </s> prefix)."""

    def __init__(self, lm, eos):
        self.lm, self.eos = lm, eos

    def _next(self, prefix):
        logits, _ = self.lm(torch.tensor([[self.eos, *prefix]]))
        return torch.log_softmax(logits[0, -1].float(), -1).tolist()

    def score(self, prefix, label):
        return self._next(prefix)[label]

    def end_score(self, prefix):
        return self._next(prefix)[self.eos]


def test_fused_ctc_prefix_beam_search_with_a_fairseq_lm_prunes_like_the_reference(tiny_data, language_model):
    """The batched, cached fairseq LM scorer gives the search what one-prefix-at-a-time scoring gives."""
    dictionary = Dictionary.load(str(tiny_data / "dict.txt"))
    lm = load_fairseq_lm(str(language_model), dictionary, str(tiny_data))
    blank = ctc_blank_index(dictionary)
    log_probs = _random_frames(300, frames=6, vocab=len(dictionary))
    batched = FairseqLmPrefixScorer(lm, dictionary.eos(), dictionary.pad())
    with torch.no_grad():
        found = ctc_prefix_beam_search(log_probs, blank, 3, batched, 0.8, 0.5)
        expected = _reference_prefix_beam_search(
            log_probs, blank, 3, _OnePrefixAtATime(lm, dictionary.eos()), 0.8, 0.5
        )
    assert [prefix for prefix, _ in found] == [prefix for prefix, _ in expected]
    for (_, score), (_, reference) in zip(found, expected, strict=True):
        assert score == pytest.approx(reference, rel=1e-5)


def _peaked(path, vocab=6, peak=0.9):
    """(T, V) log-probs with ``peak`` on path[t] and the rest spread evenly."""
    probs = torch.full((len(path), vocab), (1 - peak) / (vocab - 1), dtype=torch.float64)
    probs[torch.arange(len(path)), torch.tensor(path)] = peak
    return probs.log()


@pytest.mark.parametrize(
    "path, labels",
    [
        ([1, 1, 0, 1, 2, 0, 3, 3], (1, 1, 2, 3)),  # a blank separates a repeated label
        ([4, 4, 4, 5, 0, 0, 5, 2], (4, 5, 5, 2)),
        ([0, 0, 0, 0], ()),
    ],
)
def test_ctc_prefix_beam_search_on_peaked_frames_finds_the_path_labels(path, labels):
    for beam in (1, 2):
        best, score = ctc_prefix_beam_search(_peaked(path), BLANK, beam)[0]
        assert best == labels
        # Most of the probability is the peaked path itself, never more than all alignments.
        assert math.log(0.9) * len(path) <= score <= 0.0


# --- CIF beam search ---------------------------------------------------------------------------


def _fused_next_log_probs(generator, tokens, cif_out, eos, lm=None, lm_weight=0.0):
    """Log-probs of the token after ``tokens`` by teacher forcing the whole prefix (no cached state),
    plus ``lm_weight`` times the LM's."""
    prev = torch.tensor([[eos, *tokens]])
    logits, _ = generator.model.decoder(prev, {"cif_out": cif_out[:, : len(tokens) + 1]})
    log_probs = torch.log_softmax(logits[0, -1].float(), -1)
    log_probs[generator.banned] = -math.inf
    if lm is not None:
        lm_logits, _ = lm(prev)
        log_probs = log_probs + lm_weight * torch.log_softmax(lm_logits[0, -1].float(), -1)
    return log_probs


def _reference_cif_beam_search(generator, cif_out, steps, eos, beam, lm=None, lm_weight=0.0):
    """Keep the ``beam`` best (tokens, score) after every step; a finished hypothesis extends with
    </s> at no cost. Returns them best first, cut after the first </s>."""
    hypotheses = [((), 0.0)]
    for _ in range(steps):
        candidates = []
        for tokens, score in hypotheses:
            if eos in tokens:
                candidates.append((tokens + (eos,), score))
                continue
            log_probs = _fused_next_log_probs(generator, tokens, cif_out, eos, lm, lm_weight).tolist()
            candidates += [(tokens + (v,), score + lp) for v, lp in enumerate(log_probs) if lp > -math.inf]
        hypotheses = sorted(candidates, key=lambda item: -item[1])[:beam]
    return [
        (tokens[: tokens.index(eos) + 1] if eos in tokens else tokens, score) for tokens, score in hypotheses
    ]


@pytest.fixture(scope="module")
def cif_model(tiny_data):
    _, task, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny")
    torch.manual_seed(11)
    with torch.no_grad():
        model.decoder.output_projection.weight.mul_(2.0)  # scores far enough apart to rank stably
    return task.target_dictionary, model.eval()


def _check_against_reference(generator, dictionary, seed, steps=4, lm=None, lm_weight=0.0):
    cif_out = torch.randn(1, steps, 64, generator=torch.Generator().manual_seed(seed))
    cif = {"cif_out": cif_out, "fire_counts": torch.tensor([steps]), "fire_frames": torch.arange(steps)[None]}
    with torch.no_grad():
        tokens, step_scores = generator.search(cif)
        found = generator._hypotheses(tokens, step_scores, cif["fire_counts"], cif["fire_frames"])[0]
        expected = _reference_cif_beam_search(
            generator, cif_out, steps, dictionary.eos(), generator.beam, lm, lm_weight
        )
    assert [tuple(h["tokens"].tolist()) for h in found] == [tokens for tokens, _ in expected]
    for hypothesis, (_, score) in zip(found, expected, strict=True):
        assert hypothesis["score"].item() == pytest.approx(score, abs=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_cif_beam_search_prunes_like_the_reference(cif_model, seed):
    dictionary, model = cif_model
    beam = 3
    assert beam < len(dictionary) - 2  # fewer beams than emittable tokens: pruning at every step
    _check_against_reference(CifGenerator(model, dictionary, beam=beam, nbest=beam), dictionary, seed)


@pytest.mark.parametrize("lm_weight", [0.3, 1.0, 2.5])
def test_fused_cif_beam_search_prunes_like_the_reference(cif_model, language_model, tiny_data, lm_weight):
    dictionary, model = cif_model
    lm = load_fairseq_lm(str(language_model), dictionary, str(tiny_data))
    generator = CifGenerator(model, dictionary, beam=3, nbest=3, lm=lm, lm_weight=lm_weight)
    _check_against_reference(generator, dictionary, seed=20, lm=lm, lm_weight=lm_weight)


@pytest.mark.parametrize("lm_weight", [0.3, 1.0, 2.5])
def test_greedy_fused_scores_are_asr_plus_weighted_lm_log_probs(
    cif_model, language_model, tiny_data, lm_weight
):
    """Each step's score is log p_ASR + w log p_LM of the chosen token, the arg-max of that sum
    (both models teacher-forced on the decoded prefix)."""
    dictionary, model = cif_model
    lm = load_fairseq_lm(str(language_model), dictionary, str(tiny_data))
    generator = CifGenerator(model, dictionary, beam=1, lm=lm, lm_weight=lm_weight)
    steps = 5
    cif_out = torch.randn(1, steps, 64, generator=torch.Generator().manual_seed(30))
    with torch.no_grad():
        tokens, step_scores = generator.search({"cif_out": cif_out})
        tokens, step_scores = tokens[0, 0].tolist(), step_scores[0, 0]
        for step in range(steps):
            fused = _fused_next_log_probs(generator, tokens[:step], cif_out, dictionary.eos(), lm, lm_weight)
            assert tokens[step] == int(fused.argmax())
            assert step_scores[step].item() == pytest.approx(fused[tokens[step]].item(), abs=1e-5)

"""CTC prefix beam search, with optional shallow fusion of a language model.

Prefix beam search keeps, for every label prefix, the probability of its alignments that end in a
blank and of those that end in its last label, so a prefix's score sums over all its alignments
(Graves 2012; Hannun et al. 2014). At each frame only the ``beam`` most likely labels (and the
blank) extend the prefixes; with ``beam`` at least the vocabulary size the search is exact for
``beam``-best prefixes. Shallow fusion adds the weighted LM log-probability of each label, plus a
per-label bonus, whenever a prefix grows, and that of ``</s>`` at the end. A hotword context graph
(contextual biasing) adds its bonus whenever a prefix grows, and takes back the bonus of an
unfinished match at the end.

Plain Python over the frames' log-probabilities, a torch tensor or a numpy array: the PyTorch
recogniser and the torch-free ONNX runtime run this same search.
"""

import math
from collections import defaultdict
from typing import Dict, List, Optional, Protocol, Tuple

__all__ = ["CtcPrefixSearch", "PrefixScorer", "ctc_prefix_beam_search"]

Prefix = Tuple[int, ...]


class PrefixScorer(Protocol):
    """What prefix beam search asks of a language model (natural-log scores).

    ``prepare`` is called with the prefixes of a frame before they are scored, so a neural LM can
    score them in one batch; ``reset`` starts a new utterance.
    """

    def reset(self) -> None: ...
    def to(self, device) -> "PrefixScorer": ...
    def prepare(self, prefixes) -> None: ...
    def score(self, prefix: Prefix, label: int) -> float: ...
    def end_score(self, prefix: Prefix) -> float: ...


def _log_add(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def _top_labels(log_probs, count: int) -> List[List[int]]:
    """The ``count`` most likely labels of every frame (a tensor's ``topk``, or a numpy partition)."""
    if hasattr(log_probs, "topk"):
        return log_probs.topk(count, dim=1).indices.tolist()
    import numpy as np

    return np.argpartition(-np.asarray(log_probs), count - 1, axis=1)[:, :count].tolist()


def ctc_prefix_beam_search(
    log_probs,
    blank: int,
    beam: int,
    scorer: Optional[PrefixScorer] = None,
    lm_weight: float = 0.0,
    token_bonus: float = 0.0,
    context=None,
) -> List[Tuple[Prefix, float]]:
    """The ``beam`` best label sequences of (T, V) frame log-probabilities (a tensor or an array),
    best first.

    With a ``scorer`` (shallow fusion) prefixes rank by
    log P_ctc(prefix) + lm_weight * log P_lm(prefix) + token_bonus * len(prefix), and the final
    ranking adds lm_weight * log P_lm(</s> | prefix); the returned scores are these sums. With a
    ``context`` (a hotword ``ContextGraph``) prefixes also rank by its running bonus, and the final
    ranking by the bonus of the finished prefix (``context.score(prefix)``).
    """
    search = CtcPrefixSearch(blank, beam, scorer, lm_weight, token_bonus, context)
    search.advance(log_probs)
    return search.results()


class CtcPrefixSearch:
    """The state of :func:`ctc_prefix_beam_search` between frames, so a stream can feed it chunk by
    chunk: ``advance`` over each chunk's frames, then ``results`` (or ``ranked`` for a partial view)."""

    def __init__(
        self,
        blank: int,
        beam: int,
        scorer: Optional[PrefixScorer] = None,
        lm_weight: float = 0.0,
        token_bonus: float = 0.0,
        context=None,
    ):
        self.blank, self.beam = blank, beam
        self.scorer, self.lm_weight, self.token_bonus, self.context = scorer, lm_weight, token_bonus, context
        self.fused = scorer is not None and lm_weight != 0
        if self.fused:
            scorer.reset()
        # LM, length and hotword terms of every prefix made so far
        self.extra: Dict[Prefix, float] = {(): 0.0}
        self.context_states: Dict[Prefix, int] = {(): 0}
        # (log P of the alignments ending in blank, of those ending in the prefix's last label)
        self.prefixes: Dict[Prefix, Tuple[float, float]] = {(): (0.0, -math.inf)}

    def _extend(self, prefix: Prefix, label: int) -> Prefix:
        longer = prefix + (label,)
        if longer not in self.extra:
            lm = self.lm_weight * self.scorer.score(prefix, label) if self.fused else 0.0
            self.extra[longer] = self.extra[prefix] + lm + self.token_bonus
            if self.context is not None:
                bonus, self.context_states[longer] = self.context.step(self.context_states[prefix], label)
                self.extra[longer] += bonus
        return longer

    def _end_terms(self, prefix: Prefix) -> float:
        lm = self.lm_weight * self.scorer.end_score(prefix) if self.fused else 0.0
        return lm + (self.context.finalize(self.context_states[prefix]) if self.context is not None else 0.0)

    def advance(self, log_probs) -> None:
        """Extend the prefixes over (T, V) more frames of log-probabilities (a tensor or an array)."""
        if len(log_probs) == 0:
            return
        blank, prefixes = self.blank, self.prefixes
        frames = log_probs.tolist()
        top_labels = _top_labels(log_probs, min(self.beam, log_probs.shape[1]))
        for t, frame in enumerate(frames):
            if self.fused:
                self.scorer.prepare(prefixes)
            extended: Dict[Prefix, List[float]] = defaultdict(lambda: [-math.inf, -math.inf])
            labels = set(top_labels[t]) | {blank}
            for prefix, (ends_blank, ends_label) in prefixes.items():
                total = _log_add(ends_blank, ends_label)
                for label in labels:
                    p = frame[label]
                    if label == blank:
                        extended[prefix][0] = _log_add(extended[prefix][0], total + p)
                    elif prefix and label == prefix[-1]:
                        # the same label again: merged unless a blank separated them
                        extended[prefix][1] = _log_add(extended[prefix][1], ends_label + p)
                        longer = extended[self._extend(prefix, label)]
                        longer[1] = _log_add(longer[1], ends_blank + p)
                    else:
                        longer = extended[self._extend(prefix, label)]
                        longer[1] = _log_add(longer[1], total + p)
            ranked = sorted(extended.items(), key=lambda item: -(_log_add(*item[1]) + self.extra[item[0]]))
            prefixes = {prefix: tuple(scores) for prefix, scores in ranked[: self.beam]}
        self.prefixes = prefixes

    def ranked(self) -> List[Tuple[Prefix, float]]:
        """The live prefixes by their running score (no end-of-sentence terms), best first."""
        items = self.prefixes.items()
        scored = [(prefix, _log_add(*scores) + self.extra[prefix]) for prefix, scores in items]
        return sorted(scored, key=lambda item: -item[1])

    def results(self) -> List[Tuple[Prefix, float]]:
        """The final ranking: running scores plus the end terms (LM ``</s>``, unfinished hotwords)."""
        if self.fused:
            self.scorer.prepare(self.prefixes)
        final = [
            (prefix, _log_add(*scores) + self.extra[prefix] + self._end_terms(prefix))
            for prefix, scores in self.prefixes.items()
        ]
        return sorted(final, key=lambda item: -item[1])[: self.beam]

"""CTC prefix beam search, with optional shallow fusion of a language model.

Prefix beam search keeps, for every label prefix, the probability of its alignments that end in a
blank and of those that end in its last label, so a prefix's score sums over all its alignments
(Graves 2012; Hannun et al. 2014). At each frame only the ``beam`` most likely labels (and the
blank) extend the prefixes; with ``beam`` at least the vocabulary size the search is exact for
``beam``-best prefixes. Shallow fusion adds the weighted LM log-probability of each label, plus a
per-label bonus, whenever a prefix grows, and that of ``</s>`` at the end. A hotword context graph
(contextual biasing) adds its bonus whenever a prefix grows, and takes back the bonus of an
unfinished match at the end.
"""

import math
from collections import defaultdict
from typing import Dict, List, Optional, Protocol, Tuple

from torch import Tensor

__all__ = ["PrefixScorer", "ctc_prefix_beam_search"]

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


def ctc_prefix_beam_search(
    log_probs: Tensor,
    blank: int,
    beam: int,
    scorer: Optional[PrefixScorer] = None,
    lm_weight: float = 0.0,
    token_bonus: float = 0.0,
    context=None,
) -> List[Tuple[Prefix, float]]:
    """The ``beam`` best label sequences of (T, V) frame log-probabilities, best first.

    With a ``scorer`` (shallow fusion) prefixes rank by
    log P_ctc(prefix) + lm_weight * log P_lm(prefix) + token_bonus * len(prefix), and the final
    ranking adds lm_weight * log P_lm(</s> | prefix); the returned scores are these sums. With a
    ``context`` (a hotword ``ContextGraph``) prefixes also rank by its running bonus, and the final
    ranking by the bonus of the finished prefix (``context.score(prefix)``).
    """
    fused = scorer is not None and lm_weight != 0
    if fused:
        scorer.reset()
    extra: Dict[Prefix, float] = {(): 0.0}  # LM, length and hotword terms of every prefix made so far
    context_states: Dict[Prefix, int] = {(): 0}

    def extend(prefix: Prefix, label: int) -> Prefix:
        longer = prefix + (label,)
        if longer not in extra:
            lm = lm_weight * scorer.score(prefix, label) if fused else 0.0
            extra[longer] = extra[prefix] + lm + token_bonus
            if context is not None:
                bonus, context_states[longer] = context.step(context_states[prefix], label)
                extra[longer] += bonus
        return longer

    def end_terms(prefix: Prefix) -> float:
        lm = lm_weight * scorer.end_score(prefix) if fused else 0.0
        return lm + (context.finalize(context_states[prefix]) if context is not None else 0.0)

    prefixes: Dict[Prefix, Tuple[float, float]] = {(): (0.0, -math.inf)}  # (ends in blank, ends in label)
    candidates = min(beam, log_probs.size(1))
    frames = log_probs.tolist()
    top_labels = log_probs.topk(candidates, dim=1).indices.tolist()
    for t, frame in enumerate(frames):
        if fused:
            scorer.prepare(prefixes)
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
                    longer = extended[extend(prefix, label)]
                    longer[1] = _log_add(longer[1], ends_blank + p)
                else:
                    longer = extended[extend(prefix, label)]
                    longer[1] = _log_add(longer[1], total + p)
        ranked = sorted(extended.items(), key=lambda item: -(_log_add(*item[1]) + extra[item[0]]))[:beam]
        prefixes = {prefix: tuple(scores) for prefix, scores in ranked}
    if fused:
        scorer.prepare(prefixes)
    final = [
        (prefix, _log_add(*scores) + extra[prefix] + end_terms(prefix)) for prefix, scores in prefixes.items()
    ]
    return sorted(final, key=lambda item: -item[1])[:beam]

"""Decoding of CTC models for fairseq-generate: greedy, or prefix beam search.

Prefix beam search keeps, for every label prefix, the probability of its alignments that end in a
blank and of those that end in its last label, so a prefix's score sums over all its alignments
(Graves 2012; Hannun et al. 2014). At each frame only the ``beam`` most likely labels (and the
blank) extend the prefixes; with ``beam`` at least the vocabulary size the search is exact for
``beam``-best prefixes. Greedy decoding (beam 1) scores its best path. Shallow fusion with a language
model (``prefix_lm_scorers``) adds the weighted LM log-probability of each label, plus a per-label
bonus, whenever a prefix grows, and that of ``</s>`` at the end. Hypotheses carry ``tokens``
(ending with ``</s>``), ``score`` (natural log),
``positional_scores`` (the score on ``</s>``, zeros before: CTC scores whole label sequences) and
``alignment`` None.
"""

import logging
import math
from collections import defaultdict
from typing import Dict, List, Optional, Protocol, Tuple

import torch
from torch import Tensor

from .ctc_greedy import ctc_greedy_tokens

__all__ = ["CtcGenerator", "ctc_prefix_beam_search", "sequence_hypothesis"]

logger = logging.getLogger(__name__)

Prefix = Tuple[int, ...]


class PrefixScorer(Protocol):
    """What prefix beam search asks of a language model (see ``prefix_lm_scorers``)."""

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
) -> List[Tuple[Prefix, float]]:
    """The ``beam`` best label sequences of (T, V) frame log-probabilities, best first.

    With a ``scorer`` (shallow fusion) prefixes rank by
    log P_ctc(prefix) + lm_weight * log P_lm(prefix) + token_bonus * len(prefix), and the final
    ranking adds lm_weight * log P_lm(</s> | prefix); the returned scores are these sums.
    """
    fused = scorer is not None and lm_weight != 0
    if fused:
        scorer.reset()
    extra: Dict[Prefix, float] = {(): 0.0}  # LM and length terms of every prefix made so far

    def extend(prefix: Prefix, label: int) -> Prefix:
        longer = prefix + (label,)
        if longer not in extra:
            lm = lm_weight * scorer.score(prefix, label) if fused else 0.0
            extra[longer] = extra[prefix] + lm + token_bonus
        return longer

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
        (prefix, _log_add(*scores) + extra[prefix] + (lm_weight * scorer.end_score(prefix) if fused else 0.0))
        for prefix, scores in prefixes.items()
    ]
    return sorted(final, key=lambda item: -item[1])[:beam]


class CtcGenerator:
    """Decodes a batch with one CTC model (greedy for beam 1).

    Args:
        model: an ``S2TCtcConformerModel``.
        tgt_dict: the target dictionary; its ``<ctc_blank>`` (or ``<s>``) is the blank.
        beam (int): prefix beam size. nbest (int): hypotheses per utterance (at most ``beam``).
        scorer (PrefixScorer, optional): a language model for shallow fusion; with it (and a
            non-zero ``lm_weight``) even beam 1 runs prefix beam search.
        lm_weight (float): weight of the LM log-probabilities.
        token_bonus (float): score added per label, to offset the LM's cost of each one.
    """

    def __init__(
        self,
        model,
        tgt_dict,
        beam: int = 1,
        nbest: int = 1,
        scorer: Optional[PrefixScorer] = None,
        lm_weight: float = 0.0,
        token_bonus: float = 0.0,
    ):
        from ..criterions.cif_losses import ctc_blank_index

        if nbest > beam:
            raise ValueError(f"--nbest {nbest} cannot exceed --beam {beam}")
        self.model, self.tgt_dict, self.beam, self.nbest = model, tgt_dict, beam, nbest
        self.blank, self.eos = ctc_blank_index(tgt_dict), tgt_dict.eos()
        self.symbols_to_strip_from_output = {self.eos}
        self.scorer = scorer if lm_weight != 0 else None
        self.lm_weight, self.token_bonus = lm_weight, token_bonus
        self.greedy = beam == 1 and self.scorer is None and token_bonus == 0
        fusion = f", LM weight {lm_weight}, token bonus {token_bonus}" if self.scorer is not None else ""
        logger.info(
            f"CTC decoding: {'greedy' if self.greedy else 'prefix beam search'}, beam {beam}, nbest {nbest}"
            + fusion
        )

    @torch.no_grad()
    def generate(self, models, sample, prefix_tokens=None, constraints=None, **unused):
        if len(models) != 1 or prefix_tokens is not None or constraints is not None:
            raise ValueError("CTC decoding takes one model, without prefixes or constraints")
        self.model.eval()
        output = self.model(**sample["net_input"])
        log_probs = torch.log_softmax(output["ctc_logits"].float(), dim=-1)
        padding_mask = output["encoder_padding_mask"]
        if self.scorer is not None:
            self.scorer.to(log_probs.device)
        if self.greedy:  # the best path, scored by its own log-probability
            best_path = (log_probs.max(dim=-1).values.masked_fill(padding_mask, 0.0)).sum(dim=1).tolist()
            labels = ctc_greedy_tokens(log_probs, padding_mask, self.blank)
            results = [[(tuple(sequence), score)] for sequence, score in zip(labels, best_path, strict=True)]
        else:
            lengths = (~padding_mask).sum(dim=1).tolist()
            results = [
                ctc_prefix_beam_search(
                    log_probs[b, :length].cpu(),
                    self.blank,
                    self.beam,
                    self.scorer,
                    self.lm_weight,
                    self.token_bonus,
                )
                for b, length in enumerate(lengths)
            ]
        return [
            [sequence_hypothesis(labels, score, self.eos) for labels, score in best[: self.nbest]]
            for best in results
        ]


def sequence_hypothesis(labels, score, eos: int) -> Dict[str, Tensor]:
    """A fairseq-generate hypothesis for a model that scores whole label sequences (CTC, ASG):
    ``tokens`` = labels + ``</s>``, ``positional_scores`` zero but on ``</s>``, no alignment."""
    tokens = torch.tensor(list(labels) + [eos], dtype=torch.long)
    score = torch.as_tensor(score, dtype=torch.float)
    positional = torch.zeros(len(tokens))
    positional[-1] = score
    return {"tokens": tokens, "score": score, "positional_scores": positional, "alignment": None}

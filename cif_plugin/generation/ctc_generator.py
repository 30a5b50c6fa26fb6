"""Decoding of CTC models for fairseq-generate: greedy, or prefix beam search.

Prefix beam search keeps, for every label prefix, the probability of its alignments that end in a
blank and of those that end in its last label, so a prefix's score sums over all its alignments
(Graves 2012; Hannun et al. 2014). At each frame only the ``beam`` most likely labels (and the
blank) extend the prefixes; with ``beam`` at least the vocabulary size the search is exact for
``beam``-best prefixes. Greedy decoding (beam 1) scores its best path. Hypotheses carry ``tokens``
(ending with ``</s>``), ``score`` (natural log),
``positional_scores`` (the score on ``</s>``, zeros before: CTC scores whole label sequences) and
``alignment`` None.
"""

import logging
import math
from collections import defaultdict
from typing import Dict, List, Tuple

import torch
from torch import Tensor

from .ctc_greedy import ctc_greedy_tokens

__all__ = ["CtcGenerator", "ctc_prefix_beam_search"]

logger = logging.getLogger(__name__)

Prefix = Tuple[int, ...]


def _log_add(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


def ctc_prefix_beam_search(log_probs: Tensor, blank: int, beam: int) -> List[Tuple[Prefix, float]]:
    """The ``beam`` best label sequences of (T, V) frame log-probabilities, best first."""
    prefixes: Dict[Prefix, Tuple[float, float]] = {(): (0.0, -math.inf)}  # (ends in blank, ends in label)
    candidates = min(beam, log_probs.size(1))
    frames = log_probs.tolist()
    top_labels = log_probs.topk(candidates, dim=1).indices.tolist()
    for t, frame in enumerate(frames):
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
                    longer = extended[prefix + (label,)]
                    longer[1] = _log_add(longer[1], ends_blank + p)
                else:
                    longer = extended[prefix + (label,)]
                    longer[1] = _log_add(longer[1], total + p)
        ranked = sorted(extended.items(), key=lambda item: -_log_add(*item[1]))[:beam]
        prefixes = {prefix: tuple(scores) for prefix, scores in ranked}
    ranked = sorted(((prefix, _log_add(*scores)) for prefix, scores in prefixes.items()), key=lambda x: -x[1])
    return ranked[:beam]


class CtcGenerator:
    """Decodes a batch with one CTC model (greedy for beam 1).

    Args:
        model: an ``S2TCtcConformerModel``.
        tgt_dict: the target dictionary; its ``<ctc_blank>`` (or ``<s>``) is the blank.
        beam (int): prefix beam size. nbest (int): hypotheses per utterance (at most ``beam``).
    """

    def __init__(self, model, tgt_dict, beam: int = 1, nbest: int = 1):
        from ..criterions.cif_losses import ctc_blank_index

        if nbest > beam:
            raise ValueError(f"--nbest {nbest} cannot exceed --beam {beam}")
        self.model, self.tgt_dict, self.beam, self.nbest = model, tgt_dict, beam, nbest
        self.blank, self.eos = ctc_blank_index(tgt_dict), tgt_dict.eos()
        self.symbols_to_strip_from_output = {self.eos}
        logger.info(
            f"CTC decoding: {'greedy' if beam == 1 else 'prefix beam search'}, beam {beam}, nbest {nbest}"
        )

    @torch.no_grad()
    def generate(self, models, sample, prefix_tokens=None, constraints=None, **unused):
        if len(models) != 1 or prefix_tokens is not None or constraints is not None:
            raise ValueError("CTC decoding takes one model, without prefixes or constraints")
        self.model.eval()
        output = self.model(**sample["net_input"])
        log_probs = torch.log_softmax(output["ctc_logits"].float(), dim=-1)
        padding_mask = output["encoder_padding_mask"]
        if self.beam == 1:  # the best path, scored by its own log-probability
            best_path = (log_probs.max(dim=-1).values.masked_fill(padding_mask, 0.0)).sum(dim=1).tolist()
            labels = ctc_greedy_tokens(log_probs, padding_mask, self.blank)
            results = [[(tuple(sequence), score)] for sequence, score in zip(labels, best_path, strict=True)]
        else:
            lengths = (~padding_mask).sum(dim=1).tolist()
            results = [
                ctc_prefix_beam_search(log_probs[b, :length].cpu(), self.blank, self.beam)
                for b, length in enumerate(lengths)
            ]
        return [[self._hypothesis(labels, score) for labels, score in best[: self.nbest]] for best in results]

    def _hypothesis(self, labels: Prefix, score) -> Dict[str, Tensor]:
        tokens = torch.tensor(list(labels) + [self.eos], dtype=torch.long)
        score = torch.tensor(score)
        positional = torch.zeros(len(tokens))
        positional[-1] = score
        return {"tokens": tokens, "score": score, "positional_scores": positional, "alignment": None}

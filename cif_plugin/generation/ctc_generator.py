"""Decoding of CTC models for fairseq-generate: greedy (best path), or prefix beam search with
optional shallow fusion (the searches live in ``cif_plugin.ops.ctc``).

Hypotheses carry ``tokens`` (ending with ``</s>``), ``score`` (natural log), ``positional_scores``
(the score on ``</s>``, zeros before: CTC scores whole label sequences), ``alignment`` None and
``token_spans``: each label's frames, the spikes of the best path for greedy decoding, the forced
alignment of the decoded labels after beam search.
"""

import logging
from typing import Optional

import torch

from ..ops.ctc import (
    PrefixScorer,
    ctc_best_path_scores,
    ctc_blank_index,
    ctc_forced_align,
    ctc_greedy_spans,
    ctc_prefix_beam_search,
)
from .hypotheses import sequence_hypothesis

__all__ = ["CtcGenerator"]

logger = logging.getLogger(__name__)


class CtcGenerator:
    """Decodes a batch with one CTC model (greedy for beam 1).

    Args:
        model: a model whose forward returns ``ctc_logits`` (B, T, V) and ``encoder_lengths`` (B,).
        tgt_dict: the target dictionary; its ``<ctc_blank>`` (or ``<s>``) is the blank.
        beam (int): prefix beam size. nbest (int): hypotheses per utterance (at most ``beam``).
        scorer (PrefixScorer, optional): a language model for shallow fusion; with it (and a
            non-zero ``lm_weight``) even beam 1 runs prefix beam search.
        lm_weight (float): weight of the LM log-probabilities.
        token_bonus (float): score added per label, to offset the LM's cost of each one.
        context_graph (ContextGraph, optional): hotwords to bias the prefix beam search towards
            (with it even beam 1 runs prefix beam search).
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
        context_graph=None,
    ):
        if nbest > beam:
            raise ValueError(f"--nbest {nbest} cannot exceed --beam {beam}")
        self.model, self.tgt_dict, self.beam, self.nbest = model, tgt_dict, beam, nbest
        self.blank, self.eos = ctc_blank_index(tgt_dict), tgt_dict.eos()
        self.symbols_to_strip_from_output = {self.eos}
        self.scorer = scorer if lm_weight != 0 else None
        self.lm_weight, self.token_bonus = lm_weight, token_bonus
        self.context_graph = context_graph
        fusion = f", LM weight {lm_weight}, token bonus {token_bonus}" if self.scorer is not None else ""
        if context_graph is not None:
            fusion += f", {context_graph.num_phrases} hotwords"
        logger.info(
            f"CTC decoding: {'greedy' if self.greedy else 'prefix beam search'}, beam {beam}, nbest {nbest}"
            + fusion
        )

    @property
    def greedy(self) -> bool:
        """Best-path decoding: beam 1 with nothing fused and no hotwords."""
        return self.beam == 1 and self.scorer is None and self.token_bonus == 0 and self.context_graph is None

    @torch.no_grad()
    def generate(self, models, sample, prefix_tokens=None, constraints=None, **unused):
        if len(models) != 1 or prefix_tokens is not None or constraints is not None:
            raise ValueError("CTC decoding takes one model, without prefixes or constraints")
        if self.model.training:  # eval() walks every module (about 1 ms for the paper model)
            self.model.eval()
        output = self.model(**sample["net_input"])
        log_probs = torch.log_softmax(output["ctc_logits"].float(), dim=-1)
        lengths = output["encoder_lengths"]
        if self.scorer is not None:
            self.scorer.to(log_probs.device)
        if self.greedy:  # the best path, scored by its own log-probability
            spans = ctc_greedy_spans(log_probs, lengths, self.blank)
            scores = ctc_best_path_scores(log_probs, lengths)
            return [
                [sequence_hypothesis([span.label for span in row], score, self.eos, row)]
                for row, score in zip(spans, scores, strict=True)
            ]
        results = []
        for b, length in enumerate(lengths.tolist()):
            utterance = log_probs[b, :length].cpu()
            best = ctc_prefix_beam_search(
                utterance,
                self.blank,
                self.beam,
                self.scorer,
                self.lm_weight,
                self.token_bonus,
                self.context_graph,
            )
            results.append(
                [
                    sequence_hypothesis(labels, score, self.eos, self._spans(utterance, labels))
                    for labels, score in best[: self.nbest]
                ]
            )
        return results

    def _spans(self, log_probs, labels):
        """The frames of each decoded label: its forced alignment on the utterance's frames."""
        return ctc_forced_align(log_probs, labels, self.blank) if labels else []

"""Decoding of ASG models for fairseq-generate: the Viterbi path through emissions and transitions.

Consecutive equal labels of the path are one token and replabels are unpacked. Hypotheses carry
``tokens`` (ending with ``</s>``), ``score`` (the path score: emissions + transitions, unnormalised
as ASG's are), ``positional_scores`` (the score on ``</s>``, zeros before), ``alignment`` None
and ``token_spans``, each token's frames on the Viterbi path.
"""

import logging

import torch

from ..ops.asg import asg_decode
from .hypotheses import sequence_hypothesis

__all__ = ["AsgGenerator"]

logger = logging.getLogger(__name__)


class AsgGenerator:
    """Viterbi decoding of one ``S2TAsgConformerModel`` (one hypothesis per utterance).

    Args:
        model: the ASG model (its ``transitions`` and ``replabels``). tgt_dict: the target dictionary.
    """

    def __init__(self, model, tgt_dict, beam: int = 1, nbest: int = 1):
        if nbest > 1:
            raise ValueError("ASG decoding is Viterbi: it gives one hypothesis per utterance (--nbest 1)")
        self.model, self.tgt_dict, self.eos = model, tgt_dict, tgt_dict.eos()
        self.symbols_to_strip_from_output = {self.eos}
        if beam > 1:
            logger.info(f"ASG decoding is exact Viterbi: --beam {beam} is not used")

    @torch.no_grad()
    def generate(self, models, sample, prefix_tokens=None, constraints=None, **unused):
        if len(models) != 1 or prefix_tokens is not None or constraints is not None:
            raise ValueError("ASG decoding takes one model, without prefixes or constraints")
        if self.model.training:  # eval() walks every module (about 1 ms for the paper model)
            self.model.eval()
        output = self.model(**sample["net_input"])
        decoded, scores = asg_decode(
            output["emissions"], self.model.transitions, output["encoder_lengths"], self.model.replabels
        )
        return [
            [sequence_hypothesis([span.label for span in spans], score, self.eos, spans)]
            for spans, score in zip(decoded, scores.cpu(), strict=True)
        ]

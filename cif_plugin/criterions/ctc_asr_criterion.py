"""Criterion ``ctc_asr``: CTC for encoder-only models (stock fairseq already registers ``ctc``).

Labels are the targets without ``</s>``; the blank is ``<ctc_blank>`` when the dictionary has one,
else ``<s>``. Utterances with fewer frames than labels would give an infinite loss: by default
(``--zero-infinity``) such losses and their gradients are zeroed. Validation counts the token and
word errors of greedy CTC decoding (derived ``uer``/``wer``, for ``--best-checkpoint-metric wer``).
"""

import math
from dataclasses import dataclass, field
from typing import List

import torch
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass
from omegaconf import II

from ..generation.ctc_greedy import ctc_greedy_tokens
from .cif_losses import ctc_blank_index, ctc_loss_sum, strip_target
from .error_rates import count_errors, log_error_rates, token_words

__all__ = ["CtcAsrCriterion", "CtcAsrCriterionConfig"]


@dataclass
class CtcAsrCriterionConfig(FairseqDataclass):
    zero_infinity: bool = field(
        default=True, metadata={"help": "zero the infinite losses of utterances shorter than their labels"}
    )
    post_process: str = field(
        default="char",
        metadata={
            "help": "words for w_errors: 'char' (each token is a word) or a fairseq post-process symbol"
        },
    )
    sentence_avg: bool = II("optimization.sentence_avg")


@register_criterion("ctc_asr", dataclass=CtcAsrCriterionConfig)
class CtcAsrCriterion(FairseqCriterion):
    def __init__(self, cfg: CtcAsrCriterionConfig, task):
        super().__init__(task)
        self.cfg = cfg
        self.dictionary = task.target_dictionary
        self.pad, self.eos = self.dictionary.pad(), self.dictionary.eos()
        self.blank = ctc_blank_index(self.dictionary)

    def forward(self, model, sample, reduce=True):
        net_output = model(**sample["net_input"])
        target = sample["target"]
        labels = target.masked_fill(target.eq(self.eos), self.pad)  # CTC labels: no </s>
        label_lengths = labels.ne(self.pad).sum(dim=1)
        loss = ctc_loss_sum(
            net_output["ctc_logits"], net_output["encoder_padding_mask"], labels, label_lengths,
            self.pad, self.blank, self.cfg.zero_infinity,
        )  # fmt: skip
        ntokens = int(label_lengths.sum())
        sample_size = sample["nsentences"] if self.cfg.sentence_avg else ntokens
        logging_output = {
            "loss": loss.item(),
            "ntokens": ntokens,
            "nsentences": sample["nsentences"],
            "sample_size": sample_size,
        }
        if not model.training:
            with torch.no_grad():
                hypotheses = ctc_greedy_tokens(
                    net_output["ctc_logits"], net_output["encoder_padding_mask"], self.blank
                )
            references = strip_target(target, [self.pad, self.eos])
            logging_output.update(count_errors(hypotheses, references, self.words))
        return loss, sample_size, logging_output

    def words(self, tokens: List[int]) -> List[str]:
        return token_words(tokens, self.dictionary, self.cfg.post_process)

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        sample_size = total("sample_size")
        metrics.log_scalar("loss", total("loss") / max(sample_size, 1) / math.log(2), sample_size, round=3)
        metrics.log_scalar("ntokens", total("ntokens"))
        metrics.log_scalar("nsentences", total("nsentences"))
        log_error_rates(total)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

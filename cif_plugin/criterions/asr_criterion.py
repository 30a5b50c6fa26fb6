"""What the ASR criteria (cif, ctc_asr, asg) share: the options every one of them has, the
dictionary's specials, the words of a token sequence for w_errors, ``sample_size``, the logging
output, the update count, a per-batch random generator, and metrics that are sums over workers."""

import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

import numpy as np
import torch
from fairseq import metrics
from fairseq.criterions import FairseqCriterion
from fairseq.dataclass import FairseqDataclass
from omegaconf import II
from torch import Tensor

from .error_rates import token_words
from .logged_metrics import log_contrastive_accuracy, log_error_rates, log_loss_terms

__all__ = ["AsrCriterion", "AsrCriterionConfig", "strip_target"]


@dataclass
class AsrCriterionConfig(FairseqDataclass):
    post_process: str = field(
        default="char",
        metadata={
            "help": "how validation turns token strings into words for w_errors: 'char' (each token is a "
            "word) or any fairseq post-process symbol (sentencepiece, letter, ...)"
        },
    )
    zero_infinity: bool = field(
        default=True,
        metadata={
            "help": "CTC: zero the infinite losses (and gradients) of utterances with fewer frames than "
            "their labels need (--no-zero-infinity: keep them, as published for cif)"
        },
    )
    sentence_avg: bool = II("optimization.sentence_avg")
    seed: int = II("common.seed")


def strip_target(targets: Tensor, drop: List[int]) -> List[List[int]]:
    """Target rows as lists, without padding, ``</s>`` or other ``drop`` ids."""
    return [[token for token in row if token not in drop] for row in targets.tolist()]


class AsrCriterion(FairseqCriterion):
    """Base of the ASR criteria; ``cfg`` is an :class:`AsrCriterionConfig`.

    Subclasses list the loss terms they log in ``loss_terms`` (each divided by ``sample_size`` and
    ln 2, as fairseq logs its loss).
    """

    loss_terms: Tuple[str, ...] = ("loss",)

    def __init__(self, cfg: AsrCriterionConfig, task):
        super().__init__(task)
        self.cfg = cfg
        self.dictionary = task.target_dictionary
        self.pad, self.eos = self.dictionary.pad(), self.dictionary.eos()
        self.num_updates = 0

    @property
    def needs_plm_features(self) -> bool:
        """Whether batches must carry PLM features (the task loads them when True)."""
        return False

    def set_num_updates(self, num_updates: int) -> None:
        """The trainer's update count (the task passes it before each training step)."""
        self.num_updates = num_updates

    def batch_generator(self, sample, device) -> torch.Generator:
        """A random generator seeded by --seed, the update count and the batch's utterance ids.

        The contrastive negatives are drawn from it rather than from the global generator, which
        fairseq seeds by update and by position within the update only: so a batch draws the same
        negatives wherever it is trained, on one process with --update-freq or on another rank.
        """
        ids = np.ascontiguousarray(sample["id"].cpu().numpy(), dtype=np.int64)
        seed = zlib.crc32(ids.tobytes(), zlib.crc32(np.int64([self.cfg.seed, self.num_updates]).tobytes()))
        return torch.Generator(device=device).manual_seed(seed)

    def words(self, tokens: List[int]) -> List[str]:
        return token_words(tokens, self.dictionary, self.cfg.post_process)

    def sample_size(self, sample, ntokens: int) -> int:
        """Sentences with --sentence-avg, else the ``ntokens`` the loss was summed over."""
        return sample["nsentences"] if self.cfg.sentence_avg else ntokens

    def logging_output(self, sample, loss, ntokens: int, **terms) -> Tuple[int, Dict]:
        """``sample_size`` and the logging output: loss, ``terms``, token and sentence counts."""
        sample_size = self.sample_size(sample, ntokens)
        counts = {"ntokens": ntokens, "nsentences": sample["nsentences"], "sample_size": sample_size}
        return sample_size, {"loss": loss.item(), **terms, **counts}

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        log_loss_terms(logging_outputs, cls.loss_terms)
        log_contrastive_accuracy(total)
        metrics.log_scalar("ntokens", total("ntokens"))
        metrics.log_scalar("nsentences", total("nsentences"))
        log_error_rates(total)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True

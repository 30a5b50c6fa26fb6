"""What the ASR criteria (cif, ctc_asr, asg) share: the dictionary's specials, the words of a token
sequence for w_errors, ``sample_size``, and metrics that are sums over workers."""

from typing import Dict, List, Tuple

from fairseq import metrics
from fairseq.criterions import FairseqCriterion

from .error_rates import log_contrastive_accuracy, log_error_rates, log_loss_terms, token_words

__all__ = ["AsrCriterion"]


class AsrCriterion(FairseqCriterion):
    """Base of the ASR criteria; ``cfg`` has ``post_process`` and ``sentence_avg``.

    Subclasses list the loss terms they log in ``loss_terms`` (each divided by ``sample_size`` and
    ln 2, as fairseq logs its loss).
    """

    loss_terms: Tuple[str, ...] = ("loss",)

    def __init__(self, cfg, task):
        super().__init__(task)
        self.cfg = cfg
        self.dictionary = task.target_dictionary
        self.pad, self.eos = self.dictionary.pad(), self.dictionary.eos()

    def words(self, tokens: List[int]) -> List[str]:
        return token_words(tokens, self.dictionary, self.cfg.post_process)

    def sample_size(self, sample, ntokens: int) -> int:
        """Sentences with --sentence-avg, else the ``ntokens`` the loss was summed over."""
        return sample["nsentences"] if self.cfg.sentence_avg else ntokens

    def logging_output(self, sample, loss, ntokens: int, **terms: float) -> Tuple[int, Dict]:
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

"""Metrics the criteria log: loss terms in bits per token, token and word error counts with their
derived rates (uer, wer), contrastive accuracy. Counts are summed over workers, ratios derived."""

import math
from typing import Callable, Dict, Iterable, List

from fairseq import metrics

__all__ = ["ERROR_COUNTS", "log_contrastive_accuracy", "log_error_rates", "log_loss_terms", "percent"]

ERROR_COUNTS = ("c_errors", "c_total", "w_errors", "w_total")


def percent(meters, errors: str, total: str) -> float:
    """100 * errors / total of summed meters; the sums are tensors after a distributed all-reduce."""
    count = float(meters[total].sum)
    return round(100.0 * float(meters[errors].sum) / count, 3) if count > 0 else float("nan")


def log_error_rates(total: Callable[[str], int]) -> None:
    """Log the counts (summed over workers) and derive uer and wer from them."""
    if total("c_total") > 0:
        for key in ERROR_COUNTS:
            metrics.log_scalar(key, total(key))
        metrics.log_derived("uer", lambda meters: percent(meters, "c_errors", "c_total"))
        metrics.log_derived("wer", lambda meters: percent(meters, "w_errors", "w_total"))


def log_loss_terms(logging_outputs: List[Dict], names: Iterable[str]) -> None:
    """Each of ``names`` that the outputs hold, summed, per ``sample_size`` and in bits (as fairseq)."""
    sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
    for name in names:
        if any(name in log for log in logging_outputs):
            value = sum(log.get(name, 0) for log in logging_outputs)
            metrics.log_scalar(name, value / max(sample_size, 1) / math.log(2), sample_size, round=3)


def log_contrastive_accuracy(total: Callable[[str], int]) -> None:
    """Share of anchors whose positive scored highest: counts summed over workers, then the ratio."""
    if total("contrastive_total") > 0:
        metrics.log_scalar("contrastive_correct", total("contrastive_correct"))
        metrics.log_scalar("contrastive_total", total("contrastive_total"))
        metrics.log_derived(
            "contrastive_accuracy", lambda m: percent(m, "contrastive_correct", "contrastive_total")
        )

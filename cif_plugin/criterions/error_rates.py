"""Token and word error counts for validation, and their derived rates (uer, wer)."""

from typing import Callable, Dict, List, Sequence

import torch
from fairseq import metrics
from fairseq.data.data_utils import post_process

from .cif_losses import edit_errors

__all__ = ["ERROR_COUNTS", "count_errors", "log_error_rates", "percent", "token_words"]

ERROR_COUNTS = ("c_errors", "c_total", "w_errors", "w_total")


def token_words(tokens: List[int], dictionary, post_process_symbol: str) -> List[str]:
    """Words of a token sequence: each token with 'char', else fairseq's post-processing, split."""
    if post_process_symbol == "char":
        return [dictionary[token] for token in tokens]
    return post_process(dictionary.string(torch.tensor(tokens)), post_process_symbol).split()


def count_errors(
    hypotheses: List[List[int]], references: List[List[int]], words: Callable[[List[int]], Sequence[str]]
) -> Dict[str, int]:
    """c_* on token ids, w_* on the words ``words`` makes of them."""
    c_errors, c_total = edit_errors(hypotheses, references)
    w_errors, w_total = edit_errors([words(h) for h in hypotheses], [words(r) for r in references])
    return {"c_errors": c_errors, "c_total": c_total, "w_errors": w_errors, "w_total": w_total}


def percent(meters, errors: str, total: str) -> float:
    count = meters[total].sum
    return round(100.0 * meters[errors].sum / count, 3) if count > 0 else float("nan")


def log_error_rates(total: Callable[[str], int]) -> None:
    """Log the counts (summed over workers) and derive uer and wer from them."""
    if total("c_total") > 0:
        for key in ERROR_COUNTS:
            metrics.log_scalar(key, total(key))
        metrics.log_derived("uer", lambda meters: percent(meters, "c_errors", "c_total"))
        metrics.log_derived("wer", lambda meters: percent(meters, "w_errors", "w_total"))

"""Greedy (best path) CTC decoding: the best label of every frame, repeats merged, blanks dropped."""

from typing import List

import torch
from torch import Tensor

from .spans import TokenSpan, merge_frame_labels

__all__ = ["ctc_best_path_scores", "ctc_greedy_spans", "ctc_greedy_tokens"]


def ctc_greedy_spans(logits: Tensor, lengths: Tensor, blank: int) -> List[List[TokenSpan]]:
    """Each utterance's labels with the frames of their spikes.

    Args:
        logits (Tensor): (B, T, V) CTC logits or log-probabilities.
        lengths (Tensor): (B,) valid frames.
        blank (int): the blank index.
    """
    best = logits.argmax(dim=-1).tolist()
    return [
        merge_frame_labels(row[:length], blank) for row, length in zip(best, lengths.tolist(), strict=True)
    ]


def ctc_greedy_tokens(logits: Tensor, lengths: Tensor, blank: int) -> List[List[int]]:
    """Each utterance's label sequence (see :func:`ctc_greedy_spans`)."""
    return [[span.label for span in spans] for spans in ctc_greedy_spans(logits, lengths, blank)]


def ctc_best_path_scores(log_probs: Tensor, lengths: Tensor) -> List[float]:
    """(B,) log-probability of each utterance's best path over its valid frames of (B, T, V)."""
    best = log_probs.max(dim=-1).values  # (B, T)
    padding = torch.arange(best.size(1), device=best.device) >= lengths.to(best.device).unsqueeze(1)
    return best.masked_fill(padding, 0.0).sum(dim=1).tolist()

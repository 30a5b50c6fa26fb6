"""Greedy CTC decoding: best label per frame, repeats merged, blanks dropped."""

from typing import List

from torch import Tensor

__all__ = ["ctc_greedy_tokens"]


def ctc_greedy_tokens(logits: Tensor, padding_mask: Tensor, blank: int) -> List[List[int]]:
    """
    Args:
        logits (Tensor): (B, T, V) CTC logits (or log-probabilities).
        padding_mask (Tensor): (B, T) True at padded frames.
        blank (int): the blank index.

    Returns:
        For each utterance its label sequence.
    """
    best = logits.argmax(dim=-1).tolist()
    lengths = (~padding_mask).sum(dim=1).tolist()
    sequences = []
    for frames, length in zip(best, lengths, strict=True):
        labels, previous = [], None
        for label in frames[:length]:
            if label != previous and label != blank:
                labels.append(label)
            previous = label
        sequences.append(labels)
    return sequences

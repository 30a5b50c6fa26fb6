"""Padding masks from lengths (True at padding, as PyTorch and fairseq use them)."""

from typing import Optional

import torch
from torch import Tensor

__all__ = ["padding_mask_from_lengths"]


def padding_mask_from_lengths(lengths: Tensor, max_length: Optional[int] = None) -> Tensor:
    """(B,) lengths -> (B, max_length) bool mask, True at positions >= length.

    Example: lengths [3, 1], max_length 4 -> [[F, F, F, T], [F, T, T, T]].

    Args:
        lengths (Tensor): (B,) valid positions per row.
        max_length (int, optional): mask width. Default: ``lengths.max()`` (0 for an empty batch).
    """
    if max_length is None:
        max_length = int(lengths.max()) if lengths.numel() else 0
    return torch.arange(max_length, device=lengths.device) >= lengths.unsqueeze(1)

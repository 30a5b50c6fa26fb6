"""Slow, obviously correct sequential CIF: the oracle for tests and the benchmark baseline.

A frame-by-frame transcription of the published CifMiddleware loop (docs/model.md, "CIF"), without
the bug that skips the tail of the longest utterance: one Python loop over utterances and one over frames,
with autograd through plain tensor arithmetic.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

TAIL_EPS = 1e-10


def sequential_cif(
    hidden: Tensor,
    alpha: Tensor,
    lengths: Tensor,
    threshold: float = 0.99,
    tail_threshold: Optional[float] = None,
) -> Tuple[List[Tensor], List[List[int]]]:
    """Integrate-and-fire one utterance and one frame at a time.

    Args:
        hidden (Tensor): (B, T, C) frame vectors.
        alpha (Tensor): (B, T) weights.
        lengths (Tensor): (B,) number of valid frames.
        threshold (float): firing threshold beta.
        tail_threshold (float, optional): tail firing threshold; None disables tail handling.

    Returns:
        tokens: for each utterance a (N_b, C) tensor of fired vectors (possibly N_b = 0).
        frames: for each utterance the frame index of each fire (the last valid frame for a tail).
    """
    all_tokens, all_frames = [], []
    for b in range(hidden.shape[0]):
        accumulated_weight = alpha.new_zeros(())
        state = hidden.new_zeros(hidden.shape[-1])
        tokens, frames = [], []
        length = int(lengths[b])
        for t in range(length):
            weight, vector = alpha[b, t], hidden[b, t]
            if accumulated_weight + weight >= threshold:
                needed = 1 - accumulated_weight
                tokens.append(state + needed * vector)
                frames.append(t)
                accumulated_weight = weight - needed
                state = (weight - needed) * vector
            else:
                accumulated_weight = accumulated_weight + weight
                state = state + weight * vector
        if tail_threshold is not None and accumulated_weight > tail_threshold:
            tokens.append(state / (accumulated_weight + TAIL_EPS))
            frames.append(length - 1)
        all_tokens.append(torch.stack(tokens) if tokens else hidden.new_zeros(0, hidden.shape[-1]))
        all_frames.append(frames)
    return all_tokens, all_frames


def pad_tokens(tokens: List[Tensor], num_rows: int) -> Tensor:
    """Stack per-utterance (N_b, C) token tensors into a zero-padded (B, num_rows, C) tensor."""
    padded = tokens[0].new_zeros(len(tokens), num_rows, tokens[0].shape[-1])
    rows = [torch.nn.functional.pad(t, (0, 0, 0, num_rows - t.shape[0])) for t in tokens]
    return torch.stack(rows) if rows else padded

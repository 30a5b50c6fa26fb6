"""The ASG lattices in plain PyTorch (log domain, autograd): the readable reference and fallback.

Emissions E (B, T, C), transitions A (C, C) with A[i, j] the score of label j at frame t-1
followed by label i at frame t (wav2letter's convention). Per utterance with T frames and target
y of L labels:

- fully connected: log Z = logsumexp over every label path pi of sum_t E[t, pi_t] + sum_t A[pi_t, pi_t-1];
- force aligned: the same over the paths through the target's states 0..L-1, each frame staying in
  its state or moving to the next, starting in state 0 and ending in state L-1.

The ASG loss is the first minus the second.
"""

from typing import Tuple

import torch
from torch import Tensor

__all__ = ["reference_log_partitions"]

# Stands for log 0: finite, so that masked states give zero gradients instead of NaN.
LOG_ZERO = -1e30


def reference_log_partitions(
    emissions: Tensor, transitions: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor
) -> Tuple[Tensor, Tensor]:
    """(B,) log partition functions of the fully connected and the force-aligned lattice.

    Args:
        emissions (Tensor): (B, T, C) scores. transitions (Tensor): (C, C).
        targets (Tensor): (B, S) labels, padded. input_lengths, target_lengths (Tensor): (B,).

    Utterances with T = 0, L = 0 or L > T give meaningless values: the caller masks them.
    """
    batch, frames, labels = emissions.shape
    input_lengths = input_lengths.to(emissions.device)
    target_lengths = target_lengths.to(emissions.device)
    fully_connected = emissions[:, 0]
    for t in range(1, frames):
        step = emissions[:, t] + torch.logsumexp(fully_connected.unsqueeze(1) + transitions, dim=-1)
        fully_connected = torch.where((t < input_lengths).unsqueeze(1), step, fully_connected)

    states = targets.size(1)
    y = targets.to(emissions.device).clamp(0, labels - 1)
    target_emissions = emissions.gather(2, y.unsqueeze(1).expand(batch, frames, states))  # (B, T, S)
    stay = transitions[y, y]  # (B, S)
    advance = transitions[y[:, 1:], y[:, :-1]]  # (B, S - 1): state s - 1 -> s
    is_state = torch.arange(states, device=emissions.device) < target_lengths.unsqueeze(1)
    log_zero = torch.full_like(stay[:, :1], LOG_ZERO)
    first = torch.arange(states, device=emissions.device) == 0
    aligned = torch.where(first, target_emissions[:, 0], LOG_ZERO)
    for t in range(1, frames):
        moved = torch.cat([log_zero, aligned[:, :-1] + advance], dim=1)
        step = target_emissions[:, t] + torch.logaddexp(aligned + stay, moved)
        step = torch.where(is_state, step, LOG_ZERO)
        aligned = torch.where((t < input_lengths).unsqueeze(1), step, aligned)
    last = (target_lengths - 1).clamp(min=0).unsqueeze(1)
    return torch.logsumexp(fully_connected, dim=-1), aligned.gather(1, last).squeeze(1)

"""Integrate-and-fire as dense tensor algebra, for graphs exported with dynamic lengths (ONNX).

The same closed form as :func:`~cif_plugin.modules.integrate_and_fire.integrate_and_fire` (its
docstring derives it), without the three things a graph exporter cannot keep dynamic: the host
read of the largest fire count (the number of tokens N stays a tensor), the cumulative minimum (no
ONNX operator: a (T, T) masked minimum instead) and the scatter-adds (a (B, N, T) matrix of each
frame's weight in each token, multiplied by the frames). Every shape follows the input's, so the
graph traced from one length runs on any other. Forward only, for inference; O(T^2) memory in the
number of encoder frames (60 s at the paper's 80 ms frames: 750^2).
"""

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .integrate_and_fire import TAIL_EPS

__all__ = ["DenseFireOutput", "integrate_and_fire_dense", "cumulative_min"]


class DenseFireOutput(NamedTuple):
    """N = max(1, max_b fire_counts[b]).

    Attributes:
        cif_out (Tensor): (B, N, C) integrated vectors, zero at padding.
        fire_counts (Tensor): (B,) int64 tokens of each utterance (tail included).
        fire_frames (Tensor): (B, N) int64 frame of each token's fire (a tail token: the last valid
            frame), -1 at padding.
    """

    cif_out: Tensor
    fire_counts: Tensor
    fire_frames: Tensor


def _positions(like: Tensor) -> Tensor:
    """0, 1, ..., len(like) - 1 (int64) as a cumulative sum, which traces with the input's length."""
    return torch.ones_like(like, dtype=torch.long).cumsum(0) - 1


def cumulative_min(values: Tensor) -> Tensor:
    """``torch.cummin(values, dim=1).values`` of a (B, T) integer tensor, as a masked minimum."""
    positions = _positions(values[0])
    later = positions.unsqueeze(0) > positions.unsqueeze(1)  # (t, tau): tau after t
    spread = values.unsqueeze(1).expand(-1, values.size(1), -1)  # (B, t, tau) = values[b, tau]
    return spread.masked_fill(later, torch.iinfo(values.dtype).max).amin(dim=2)


def integrate_and_fire_dense(
    hidden: Tensor,
    alpha: Tensor,
    lengths: Tensor,
    threshold: float = 0.99,
    tail_threshold: Optional[float] = None,
) -> DenseFireOutput:
    """What ``integrate_and_fire`` returns for (B, T, C) ``hidden``, (B, T) ``alpha`` and (B,)
    ``lengths``, computed without data-dependent control flow (see the module docstring)."""
    frame_index = _positions(alpha[0])  # (T,)
    valid = frame_index.unsqueeze(0) < lengths.unsqueeze(1)
    weights = alpha.masked_fill(~valid, 0.0).to(torch.float64)
    prefix_sum = weights.cumsum(dim=1)  # S_t
    prefix_sum_before = torch.nn.functional.pad(prefix_sum[:, :-1], (1, 0))  # S_{t-1}

    reachable = torch.floor(prefix_sum + (1.0 - threshold)).long()  # U_t
    lag_bound = cumulative_min(reachable - frame_index).clamp(max=1)
    fires_unmasked = frame_index + lag_bound  # F_t before restricting fires to valid frames
    previous = torch.nn.functional.pad(fires_unmasked[:, :-1], (1, 0))
    fired = (fires_unmasked > previous) & valid
    fires_upto = fired.long().cumsum(dim=1)  # F_t
    fires_before = fires_upto - fired.long()  # F_{t-1}: the token frame t feeds
    num_fired = fires_upto[:, -1]

    remainder = prefix_sum[:, -1] - num_fired.to(torch.float64)
    if tail_threshold is None:
        has_tail = torch.zeros_like(valid[:, 0])
    else:
        has_tail = remainder > tail_threshold
    fire_counts = num_fired + has_tail.long()
    num_tokens = fire_counts.max().clamp(min=1)
    token_index = _positions(torch.zeros(num_tokens, device=alpha.device))  # (N,)

    # 1 for a fired token, 1 / remainder for the tail token, 0 for the open token and padding
    tail_scale = has_tail.to(torch.float64) / (remainder + TAIL_EPS)
    is_fired_token = token_index.unsqueeze(0) < num_fired.unsqueeze(1)  # (B, N)
    is_tail = (token_index.unsqueeze(0) == num_fired.unsqueeze(1)) & has_tail.unsqueeze(1)
    token_scale = torch.where(is_fired_token, 1.0, torch.where(is_tail, tail_scale.unsqueeze(1), 0.0))

    # (B, N, T): frame t gives token F_{t-1} its weight (or, at a fire, what completes the token) ...
    feeds = fires_before.unsqueeze(1) == token_index.view(1, -1, 1)
    completing = torch.where(fired, fires_upto.to(torch.float64) - prefix_sum_before, weights)
    matrix = torch.where(feeds, completing.unsqueeze(1), 0.0)
    # ... and the fire frame of token n - 1 starts token n (1 <= n <= F) with the carry S_t - n.
    fired_token = torch.where(fired, fires_upto - 1, -1)  # (B, T): the token frame t fired
    fire_of = fired_token.unsqueeze(1) == token_index.view(1, -1, 1)  # (B, N, T)
    starts = fire_of.roll(1, dims=1) & (token_index.view(1, -1, 1) >= 1)
    carry = prefix_sum.unsqueeze(1) - token_index.view(1, -1, 1).to(torch.float64)
    matrix = matrix + torch.where(
        starts & (token_index.view(1, -1, 1) <= num_fired.view(-1, 1, 1)), carry, 0.0
    )
    matrix = matrix * token_scale.unsqueeze(2)

    compute_dtype = torch.promote_types(hidden.dtype, torch.float32)
    cif_out = torch.matmul(matrix.to(compute_dtype), hidden.to(compute_dtype))

    fire_frames = torch.where(fire_of.any(dim=2), (fire_of.long() * frame_index).sum(dim=2), -1)
    fire_frames = torch.where(is_tail, (lengths - 1).unsqueeze(1), fire_frames)
    return DenseFireOutput(cif_out, fire_counts, fire_frames)

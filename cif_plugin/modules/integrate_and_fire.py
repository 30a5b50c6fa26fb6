"""Loop-free continuous integrate-and-fire (CIF) with the reference semantics.

Dong & Xu, "CIF: Continuous Integrate-and-Fire for End-to-End Speech Recognition", ICASSP 2020;
semantics of ``CifMiddleware`` in the CIF-HieraDist code (Han et al., INTERSPEECH 2023); docs/model.md
describes the layer and docs/differences.md what we changed.

Sequential definition, per utterance, over its valid frames t = 0 .. len-1 with weight w_t and
vector h_t, accumulated weight a = 0 and state s = 0:

- fire  iff  a + w_t >= beta;  r = 1 - a  (1, not beta: a fire always integrates weight 1)
- fire:    emit s + r * h_t;  a <- w_t - r;  s <- (w_t - r) * h_t
- no fire: a <- a + w_t;      s <- s + w_t * h_t

At most one fire per frame: a weight above 1 is not split, its excess carries over and forces a
fire at the next frame. Because beta < 1 a fire can happen at a + w_t in [beta, 1), and then the
carry w_t - r is slightly negative (down to beta - 1). Tail handling, when asked for, runs after
the last valid frame of every utterance (the reference skipped the longest one): if the remaining
weight a exceeds ``tail_threshold``, s / (a + 1e-10) is emitted as a final token.

Closed form used here (no loop over time or batch). With the prefix sum S_t = w_0 + ... + w_t and
F_t the number of fires at frames <= t, the accumulated weight after frame t is S_t - F_t, so
frame t fires iff floor(S_t + 1 - beta) >= F_{t-1} + 1. Writing U_t = floor(S_t + 1 - beta)
(nondecreasing for non-negative weights), this gives F_t = min(F_{t-1} + 1, U_t), F_{-1} = 0,
whose solution is F_t = t + min(1, min_{tau <= t} (U_tau - tau)): one cumulative minimum. Frame t
then gives token F_{t-1} the weight w_t (no fire) or F_t - S_{t-1} (fire: what completes the
token), and when it fires it starts token F_t with the carry S_t - F_t. One row-wise scatter-add
builds the first kind of sum, and one gather of each token's previous fire frame adds the carry.
Fire decisions and all weights come from a float64 prefix sum.
"""

from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = ["IntegrateAndFireOutput", "integrate_and_fire", "scale_to_target_lengths"]

TAIL_EPS = 1e-10
SCALING_EPS = 1e-8


class IntegrateAndFireOutput(NamedTuple):
    """Result of :func:`integrate_and_fire`; N = max(1, max_b fire_counts[b]).

    Attributes:
        cif_out (Tensor): (B, N, C) integrated vectors, zero at padding; float32 (float64 for
            float64 inputs).
        cif_padding_mask (Tensor): (B, N) bool, True at padding.
        fire_counts (Tensor): (B,) int64 number of tokens of each utterance (tail included).
        fire_frames (Tensor): (B, N) int64 frame index at which each token fired; a tail token
            gets the utterance's last valid frame; -1 at padding.
    """

    cif_out: Tensor
    cif_padding_mask: Tensor
    fire_counts: Tensor
    fire_frames: Tensor


def scale_to_target_lengths(alpha: Tensor, target_lengths: Tensor, eps: float = SCALING_EPS) -> Tensor:
    """Rescale weights so that each utterance's weights sum to its target length (training only).

    Args:
        alpha (Tensor): (B, T) non-negative weights, zero at padding.
        target_lengths (Tensor): (B,) target lengths (the reference counts ``</s>``).
        eps (float): added to the sum of weights to avoid division by zero.

    Returns:
        Tensor: (B, T) float32 (float64 for float64 inputs) alpha * length / (sum(alpha) + eps).
    """
    compute_dtype = torch.promote_types(alpha.dtype, torch.float32)
    alpha = alpha.to(compute_dtype)
    ratio = target_lengths.to(compute_dtype) / (alpha.sum(dim=1) + eps)
    return alpha * ratio.unsqueeze(1)


def integrate_and_fire(
    hidden: Tensor,
    alpha: Tensor,
    lengths: Optional[Tensor] = None,
    threshold: float = 0.99,
    tail_threshold: Optional[float] = None,
) -> IntegrateAndFireOutput:
    """Integrate frame vectors by their weights and fire one vector per completed unit of weight.

    Differentiable with respect to ``hidden`` and ``alpha``; fire decisions are discrete.
    Inputs of any floating dtype are integrated in float32 (float64 stays float64).

    Args:
        hidden (Tensor): (B, T, C) frame vectors (must be finite, padded frames included).
        alpha (Tensor): (B, T) non-negative weights; they are forced to 0 at padded frames.
        lengths (Tensor, optional): (B,) valid frames of each utterance (right padding).
            Default: every frame is valid.
        threshold (float): firing threshold beta, in (0, 1]. Default: 0.99 (the reference).
        tail_threshold (float, optional): emit the remaining partial token, renormalised to unit
            weight, when its weight exceeds this value; ``None`` disables tail handling.
            Default: ``None``.

    Returns:
        IntegrateAndFireOutput
    """
    if hidden.dim() != 3 or alpha.shape != hidden.shape[:2] or hidden.numel() == 0:
        raise ValueError(
            "expected non-empty hidden (B, T, C) and alpha (B, T), "
            f"got {tuple(hidden.shape)} and {tuple(alpha.shape)}"
        )
    if not 0 < threshold <= 1:  # U_t below counts fires only for beta <= 1
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    batch_size, num_frames, _ = hidden.shape
    device = hidden.device
    compute_dtype = torch.promote_types(torch.promote_types(hidden.dtype, alpha.dtype), torch.float32)

    if lengths is None:
        lengths = torch.full((batch_size,), num_frames, dtype=torch.long, device=device)
    lengths = lengths.to(device)
    frame_index = torch.arange(num_frames, device=device)
    valid = frame_index.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
    alpha = alpha.masked_fill(~valid, 0.0)

    weights = alpha.to(torch.float64)
    prefix_sum = weights.cumsum(dim=1)  # S_t
    prefix_sum_before = torch.nn.functional.pad(prefix_sum[:, :-1], (1, 0))  # S_{t-1}

    with torch.no_grad():
        reachable = torch.floor(prefix_sum + (1.0 - threshold)).long()  # U_t
        lag_bound = torch.cummin(reachable - frame_index, dim=1).values.clamp(max=1)
        fires_unmasked = frame_index + lag_bound  # F_t, before restricting fires to valid frames
        fired = (
            torch.diff(fires_unmasked, dim=1, prepend=fires_unmasked.new_zeros(batch_size, 1)) > 0
        ) & valid
        fires_upto = fired.long().cumsum(dim=1)  # F_t
        fires_before = fires_upto - fired.long()  # F_{t-1}: index of the token frame t feeds
        num_fired = fires_upto[:, -1]

    remainder = prefix_sum[:, -1] - num_fired.to(torch.float64)  # weight a after the last valid frame
    if tail_threshold is None:
        has_tail = torch.zeros_like(valid[:, 0])
    else:
        has_tail = remainder > tail_threshold
    fire_counts = num_fired + has_tail.long()
    num_tokens = max(int(fire_counts.max()) if batch_size else 0, 1)  # the one host sync

    # Each token's scale: 1 if it fired, 1 / (remaining weight) for a tail, 0 for an open token.
    token_index = torch.arange(num_tokens, device=device).unsqueeze(0)
    token_scale = _token_scale(token_index, num_fired, has_tail, remainder)  # (B, N)
    frame_token_scale = _token_scale(fires_before, num_fired, has_tail, remainder)  # (B, T)

    # Frame t gives the token it feeds its weight, or at a fire the weight that completes it ...
    fires_upto_f = fires_upto.to(torch.float64)
    completing = torch.where(fired, fires_upto_f - prefix_sum_before, weights) * frame_token_scale
    # ... and every token but the first starts with the carry S_t - F_t of the previous fire frame.
    fire_frames = _fire_frames(fired, fires_upto, num_tokens)
    carry_frames = torch.nn.functional.pad(fire_frames[:, :-1], (1, 0), value=-1).clamp(min=0)
    has_carry = (token_index >= 1) & (token_index <= num_fired.unsqueeze(1))
    carry = torch.where(has_carry, prefix_sum.gather(1, carry_frames) - token_index, 0.0) * token_scale

    hidden = hidden.to(compute_dtype)
    token_offset = (torch.arange(batch_size, device=device) * num_tokens).unsqueeze(1)
    frame_offset = (torch.arange(batch_size, device=device) * num_frames).unsqueeze(1)
    # Frames feeding an open token carry weight 0 here, so clamping their row index is harmless.
    rows = (fires_before.clamp(max=num_tokens - 1) + token_offset).reshape(-1)
    cif_out = _TokenSum.apply(
        hidden.reshape(batch_size * num_frames, -1),
        rows,
        completing.to(compute_dtype).reshape(-1),
        (carry_frames + frame_offset).reshape(-1),
        carry.to(compute_dtype).reshape(-1),
    ).view(batch_size, num_tokens, -1)

    cif_padding_mask = token_index >= fire_counts.unsqueeze(1)
    is_tail = has_tail.unsqueeze(1) & (token_index == num_fired.unsqueeze(1))
    fire_frames = torch.where(is_tail, lengths.unsqueeze(1) - 1, fire_frames)
    return IntegrateAndFireOutput(cif_out, cif_padding_mask, fire_counts, fire_frames)


class _TokenSum(torch.autograd.Function):
    """out[rows[i]] += frame_weight[i] * hidden[i];  out[j] += carry_weight[j] * hidden[carry_source[j]].

    The same sums as ``index_add`` + ``index_select`` under autograd, with a backward that reuses
    one (B*T, C) buffer instead of allocating, zero-filling and adding a second one.

    Shapes: hidden (B*T, C); rows, frame_weight (B*T,); carry_source, carry_weight (B*N,);
    output (B*N, C).
    """

    @staticmethod
    def forward(ctx, hidden, rows, frame_weight, carry_source, carry_weight):
        carried = hidden.index_select(0, carry_source)
        out = hidden.new_zeros(carry_source.shape[0], hidden.shape[1])
        out.index_add_(0, rows, hidden * frame_weight.unsqueeze(1))
        out.addcmul_(carried, carry_weight.unsqueeze(1))
        ctx.save_for_backward(hidden, rows, frame_weight, carry_source, carry_weight, carried)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, rows, frame_weight, carry_source, carry_weight, carried = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_frames = grad_out.index_select(0, rows)  # (B*T, C)
        grad_frame_weight = grad_carry_weight = None
        if ctx.needs_input_grad[2]:
            grad_frame_weight = (grad_frames * hidden).sum(1)
        if ctx.needs_input_grad[4]:
            grad_carry_weight = (grad_out * carried).sum(1)
        grad_hidden = None
        if ctx.needs_input_grad[0]:
            grad_hidden = grad_frames.mul_(frame_weight.unsqueeze(1))
            grad_hidden.index_add_(0, carry_source, grad_out * carry_weight.unsqueeze(1))
        return grad_hidden, None, grad_frame_weight, None, grad_carry_weight


def _token_scale(token: Tensor, num_fired: Tensor, has_tail: Tensor, remainder: Tensor) -> Tensor:
    """Scale of each token index in ``token`` (B, *): 1 fired, 1 / (remainder + eps) tail, 0 open."""
    num_fired, has_tail, remainder = num_fired.unsqueeze(1), has_tail.unsqueeze(1), remainder.unsqueeze(1)
    tail_scale = torch.where((token == num_fired) & has_tail, 1.0 / (remainder + TAIL_EPS), 0.0)
    return torch.where(token < num_fired, 1.0, tail_scale)


def _fire_frames(fired: Tensor, fires_upto: Tensor, num_tokens: int) -> Tensor:
    """(B, N) frame at which each token fired, -1 where no token fired."""
    batch_size, num_frames = fired.shape
    frames = torch.full((batch_size, num_tokens + 1), -1, dtype=torch.long, device=fired.device)
    # Frames that did not fire write into a scratch column that is dropped afterwards.
    target_column = torch.where(fired, fires_upto - 1, num_tokens)
    frames.scatter_(1, target_column, torch.arange(num_frames, device=fired.device).expand(batch_size, -1))
    return frames[:, :num_tokens]

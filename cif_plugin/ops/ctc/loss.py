"""Summed CTC loss with the numerics the criteria need."""

import torch
from torch import Tensor

__all__ = ["ctc_loss_sum"]


def ctc_loss_sum(
    ctc_logits: Tensor,
    input_lengths: Tensor,
    targets: Tensor,
    target_lengths: Tensor,
    pad: int,
    blank: int,
    zero_infinity: bool = True,
) -> Tensor:
    """Summed CTC loss; log-softmax in float32 (float64 stays float64), cuDNN off.

    cuDNN's CTC needs int32 lengths on the CPU and labels <= 256 and differs numerically from the
    native kernel, so the native one always runs.

    Args:
        ctc_logits (Tensor): (B, T, V) frame logits.
        input_lengths (Tensor): (B,) valid frames.
        targets (Tensor): (B, S) label rows right-padded with ``pad``.
        target_lengths (Tensor): (B,) labels per row.
        pad (int): padding index. blank (int): blank index.
        zero_infinity (bool): zero the infinite losses (and gradients) of utterances with fewer
            frames than their labels need. Default: True.
    """
    compute_dtype = torch.promote_types(ctc_logits.dtype, torch.float32)  # at least float32
    log_probs = torch.log_softmax(ctc_logits.to(compute_dtype), dim=-1).transpose(0, 1)  # (T, B, V)
    flat_targets = targets.masked_select(targets.ne(pad))
    with torch.backends.cudnn.flags(enabled=False):
        return torch.nn.functional.ctc_loss(
            log_probs, flat_targets, input_lengths, target_lengths,
            blank=blank, reduction="sum", zero_infinity=zero_infinity,
        )  # fmt: skip

"""Loss terms of the ``cif`` criterion as pure functions (docs/model.md, "Losses"). All return sums.

Targets are (B, S) token ids right-padded with ``pad``, each ending with ``</s>``; their
lengths include ``</s>`` (the reference trains CTC and the quantity on that length too).
"""

from typing import List, Tuple

import torch
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from torch import Tensor

__all__ = ["cross_entropy_sum", "quantity_loss_sum", "teacher_forced_predictions"]


def quantity_loss_sum(quantity: Tensor, target_lengths: Tensor) -> Tensor:
    """sum_b |sum_t alpha_bt - target_length_b|, on the unscaled weights (``quantity`` of the CIF)."""
    return (quantity.float() - target_lengths.float()).abs().sum()


def cross_entropy_sum(
    logits: Tensor, targets: Tensor, pad: int, label_smoothing: float
) -> Tuple[Tensor, Tensor]:
    """Label-smoothed cross-entropy over min(M, S) positions (target padding masked, as published).

    Args:
        logits (Tensor): (B, M, V) decoder logits.
        targets (Tensor): (B, S) padded targets; cut to the logits' length when longer.
        pad (int): padding index (ignored positions).
        label_smoothing (float): epsilon of fairseq's ``label_smoothed_nll_loss`` (0: plain NLL).

    Returns:
        (Tensor, Tensor): the (smoothed) loss sum and the plain NLL sum.
    """
    length = min(logits.size(1), targets.size(1))
    log_probs = torch.log_softmax(logits[:, :length].float(), dim=-1)
    return label_smoothed_nll_loss(
        log_probs, targets[:, :length], label_smoothing, ignore_index=pad, reduce=True
    )


def teacher_forced_predictions(logits: Tensor, fire_counts: Tensor, drop: List[int]) -> List[List[int]]:
    """Arg-max tokens of each utterance's first ``fire_counts`` positions, without ``drop`` ids.

    The published validation "CER": teacher-forced, not a real decode.
    """
    counts = fire_counts.clamp(max=logits.size(1)).tolist()
    best = logits.argmax(dim=-1).tolist()
    return [
        [token for token in row[:count] if token not in drop] for row, count in zip(best, counts, strict=True)
    ]

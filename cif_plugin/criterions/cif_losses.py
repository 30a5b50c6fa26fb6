"""Loss terms of the ``cif`` criterion as pure functions (spec 3.3-3.5, 3.11). All return sums.

Targets are (B, S) token ids right-padded with ``pad``, each ending with ``</s>``; their
lengths include ``</s>`` (the reference trains CTC and the quantity on that length too).
"""

from typing import List, Optional, Tuple

import editdistance
import torch
from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss
from torch import Tensor

__all__ = [
    "ctc_blank_index",
    "ctc_loss_sum",
    "cross_entropy_sum",
    "edit_errors",
    "quantity_loss_sum",
    "strip_target",
    "teacher_forced_predictions",
]


def ctc_loss_sum(
    ctc_logits: Tensor,
    encoder_padding_mask: Tensor,
    targets: Tensor,
    target_lengths: Tensor,
    pad: int,
    blank: int,
    zero_infinity: bool = False,
) -> Tensor:
    """Summed CTC loss, log-softmax in float32 (float64 stays float64), cuDNN off (spec 3.3).

    Args:
        ctc_logits (Tensor): (B, T, V).
        encoder_padding_mask (Tensor): (B, T) True at padded frames.
        targets (Tensor): (B, S) padded targets (``</s>`` included as a label).
        target_lengths (Tensor): (B,) target lengths.
        pad (int): padding index. blank (int): blank index. zero_infinity (bool): as in torch.
    """
    compute_dtype = torch.promote_types(ctc_logits.dtype, torch.float32)  # at least float32
    log_probs = torch.log_softmax(ctc_logits.to(compute_dtype), dim=-1).transpose(0, 1)  # (T, B, V)
    input_lengths = (~encoder_padding_mask).sum(dim=1)
    flat_targets = targets.masked_select(targets.ne(pad))
    with torch.backends.cudnn.flags(enabled=False):
        return torch.nn.functional.ctc_loss(
            log_probs, flat_targets, input_lengths, target_lengths,
            blank=blank, reduction="sum", zero_infinity=zero_infinity,
        )  # fmt: skip


def quantity_loss_sum(quantity: Tensor, target_lengths: Tensor) -> Tensor:
    """sum_b |sum_t alpha_bt - target_length_b| on unscaled weights (spec 3.4)."""
    return (quantity.float() - target_lengths.float()).abs().sum()


def cross_entropy_sum(
    logits: Tensor, targets: Tensor, pad: int, label_smoothing: float
) -> Tuple[Tensor, Tensor]:
    """Label-smoothed cross-entropy over min(M, S) positions (spec 3.5).

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

    The reference's validation "CER" (spec 3.11): teacher-forced, not a real decode.
    """
    counts = fire_counts.clamp(max=logits.size(1)).tolist()
    best = logits.argmax(dim=-1).tolist()
    return [
        [token for token in row[:count] if token not in drop] for row, count in zip(best, counts, strict=True)
    ]


def edit_errors(hypotheses: List[List], references: List[List]) -> Tuple[int, int]:
    """(total edit distance, total reference length) over utterance pairs."""
    errors = sum(editdistance.eval(hyp, ref) for hyp, ref in zip(hypotheses, references, strict=True))
    return errors, sum(len(ref) for ref in references)


def strip_target(targets: Tensor, drop: List[int]) -> List[List[int]]:
    """Target rows as lists, without padding, ``</s>`` or other ``drop`` ids."""
    return [[token for token in row if token not in drop] for row in targets.tolist()]


def ctc_blank_index(dictionary, blank_symbol: Optional[str] = "<ctc_blank>") -> int:
    """The ``<ctc_blank>`` symbol if the dictionary has one, else ``<s>`` (bos) as the reference."""
    if blank_symbol is not None and blank_symbol in dictionary.indices:
        return dictionary.index(blank_symbol)
    return dictionary.bos()

"""Hierarchical distillation losses (Han et al., INTERSPEECH 2023; docs/model.md). Sums, float32.

- ACD, acoustic contrastive distillation: each projected CIF vector must pick the PLM feature of its
  own token among K negatives (PLM features of other tokens of the batch); InfoNCE on cosines / tau.
- Cosine distance (knowledge transfer into CTC models): 1 - cos between each projected CIF vector
  and the PLM feature of its token.
- LRD, linguistic regression distillation: squared distance between projected decoder states and
  the PLM features of the same tokens.

PLM features come as (B, L+2, D) rows [CLS], tokens, [SEP]; dropping [CLS] lines row i up with
target i, and [SEP] with ``</s>``.
"""

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "aligned_teacher",
    "sample_negatives",
    "negative_count",
    "acd_loss",
    "contrastive_distillation",
    "cosine_distance_loss",
    "lrd_loss",
]

COSINE_EPS = 1e-6


def aligned_teacher(plm_features: Tensor, width: int) -> Tensor:
    """(B, L+2, D) PLM rows -> (B, R, D) float32 teacher rows for positions 0..R-1, R = min(L+1, width)."""
    return plm_features[:, 1 : 1 + width].float()


def negative_count(num_anchors: int, requested: int) -> int:
    """``requested``, or 0.8 x the anchors when the batch has too few (the reference's rule)."""
    return requested if num_anchors > requested else int(0.8 * num_anchors)


def sample_negatives(
    num_anchors: int, count: int, generator: Optional[torch.Generator] = None, device=None
) -> Tensor:
    """(N, K) indices: for each anchor K distinct rows drawn uniformly from all N (itself included)."""
    weights = torch.ones(num_anchors, num_anchors, device=device)
    return torch.multinomial(weights, count, replacement=False, generator=generator)


def acd_loss(
    student: Tensor, teacher: Tensor, negatives: Tensor, temperature: float, remove_overlap: bool
) -> Tuple[Tensor, Tensor]:
    """Contrastive loss of N anchors from one N x N cosine matrix.

    Args:
        student (Tensor): (N, D) projected CIF vectors.
        teacher (Tensor): (N, D) PLM features of the same tokens (row n is anchor n's positive).
        negatives (Tensor): (N, K) teacher rows used as anchor n's negatives.
        temperature (float): tau; logits are cosines / tau.
        remove_overlap (bool): a negative that is the anchor's own row does not count.

    Returns:
        (Tensor, Tensor): summed cross-entropy with the positive as class 0, and the number of
        anchors whose positive has the largest cosine.
    """
    student = F.normalize(student.float(), dim=-1, eps=COSINE_EPS)
    teacher = F.normalize(teacher.float(), dim=-1, eps=COSINE_EPS)
    cosines = student @ teacher.t()  # (N, N)
    positive = cosines.diagonal().unsqueeze(1)
    negative = cosines.gather(1, negatives)
    if remove_overlap:
        own = negatives == torch.arange(len(negatives), device=negatives.device).unsqueeze(1)
        negative = negative.masked_fill(own, float("-inf"))
    logits = torch.cat([positive, negative], dim=1) / temperature
    targets = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(logits, targets, reduction="sum")
    return loss, (logits.argmax(dim=1) == 0).sum()


def contrastive_distillation(
    student: Tensor,
    teacher: Tensor,
    requested_negatives: int,
    temperature: float,
    remove_overlap: bool,
    generator: Optional[torch.Generator] = None,
) -> Tuple[Tensor, Tensor]:
    """:func:`acd_loss` with negatives drawn from the batch (a single anchor has none: loss 0).

    Args:
        student (Tensor): (N, D) projected CIF vectors of the batch's valid positions.
        teacher (Tensor): (N, D) PLM features of the same tokens.
        requested_negatives (int): K, see :func:`negative_count`.
        generator (torch.Generator, optional): draws the negatives (default: torch's global one).
    """
    count = negative_count(len(student), requested_negatives)
    if count < 1:
        return student.new_zeros((), dtype=torch.float32), torch.zeros((), dtype=torch.long)
    negatives = sample_negatives(len(student), count, generator, device=student.device)
    return acd_loss(student, teacher, negatives, temperature, remove_overlap)


def cosine_distance_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Sum over the N rows of 1 - cos(student_n, teacher_n); (N, D) inputs, float32 result."""
    cosines = F.cosine_similarity(student.float(), teacher.float(), dim=-1, eps=COSINE_EPS)
    return (1.0 - cosines).sum()


def lrd_loss(student: Tensor, teacher: Tensor, valid: Tensor, dim_scaling: bool) -> Tensor:
    """Squared error over valid positions: summed over dimensions, or averaged with ``dim_scaling``.

    Args:
        student (Tensor): (B, R, D) projected decoder states.
        teacher (Tensor): (B, R, D) PLM features of the same positions.
        valid (Tensor): (B, R) bool, the positions that count.
        dim_scaling (bool): average over the D dimensions (False: the paper's --no-dim-scaling-for-mse-loss).
    """
    squared = (student.float() - teacher.float()).pow(2)
    per_position = squared.mean(dim=-1) if dim_scaling else squared.sum(dim=-1)
    return (per_position * valid.float()).sum()

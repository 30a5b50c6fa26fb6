"""The ASG loss (Auto Segmentation Criterion, Collobert et al. 2016, wav2letter).

loss_b = scale_b * (log Z_fully_connected - log Z_force_aligned) for each utterance (see
``reference.py`` for the lattices). ``implementation="native"`` runs our C++ (CPU, at::parallel_for
over the batch) or CUDA kernels: their forward pass computes alpha and beta and the gradients, so the
backward pass only scales them; ``"python"`` runs the autograd reference. float32 and float64 are
computed as given, float16/bfloat16 in float32; the kernels accumulate in float64.
"""

import importlib
from typing import Tuple

import torch
from torch import Tensor

from .reference import reference_log_partitions

__all__ = ["asg_loss", "asg_log_partitions", "SCALE_MODES", "native_extension"]

SCALE_MODES = ("none", "target_size", "target_size_sqrt")


def native_extension(device: torch.device):
    """The compiled module for ``device`` (``_asg_cpu`` or ``_asg_cuda``), with a clear error if unbuilt."""
    name = "_asg_cuda" if device.type == "cuda" else "_asg_cpu"
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError as error:
        raise ImportError(
            f"the ASG extension {name} is not built ({error}): run `make install` (pip install -e . builds "
            "it; the CUDA one needs CUDA_HOME or nvcc), or use the pure-PyTorch implementation "
            "(implementation='python', --asg-implementation python)"
        ) from None


class _NativeLattices(torch.autograd.Function):
    """(B,) log Z_fc - log Z_fa; gradients computed in the forward pass, scaled in the backward."""

    @staticmethod
    def forward(ctx, emissions, transitions, targets, input_lengths, target_lengths):
        grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        extension = native_extension(emissions.device)
        fully_connected, force_aligned, grad_emissions, grad_transitions = extension.asg_forward(
            emissions, transitions, targets, input_lengths, target_lengths, grads
        )
        ctx.save_for_backward(grad_emissions, grad_transitions)
        ctx.dtypes = (emissions.dtype, transitions.dtype)
        return (fully_connected - force_aligned).to(emissions.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        grad_emissions, grad_transitions = ctx.saved_tensors
        weights = grad_output.double()
        emissions_grad = transitions_grad = None
        if ctx.needs_input_grad[0]:
            emissions_grad = (weights[:, None, None] * grad_emissions).to(ctx.dtypes[0])
        if ctx.needs_input_grad[1]:
            transitions_grad = torch.einsum("b,bij->ij", weights, grad_transitions).to(ctx.dtypes[1])
        return emissions_grad, transitions_grad, None, None, None


def asg_log_partitions(
    emissions: Tensor, transitions: Tensor, targets: Tensor, input_lengths: Tensor, target_lengths: Tensor
) -> Tuple[Tensor, Tensor]:
    """(B,) float64 log partition functions (fully connected, force aligned) of the native kernels,
    without gradients; (B, T, C) emissions. For tests and inspection."""
    extension = native_extension(emissions.device)
    fully_connected, force_aligned, _, _ = extension.asg_forward(
        emissions, transitions, targets.long(), input_lengths.long(), target_lengths.long(), False
    )
    return fully_connected, force_aligned


def asg_loss(
    emissions: Tensor,
    transitions: Tensor,
    targets: Tensor,
    input_lengths: Tensor,
    target_lengths: Tensor,
    reduction: str = "mean",
    scale_mode: str = "none",
    zero_infinity: bool = False,
    batch_first: bool = True,
    implementation: str = "native",
) -> Tensor:
    """ASG loss of a batch.

    Args:
        emissions (Tensor): (B, T, C) unnormalised label scores, or (T, B, C) with ``batch_first=False``.
        transitions (Tensor): (C, C); ``transitions[i, j]`` scores label j followed by label i.
        targets (Tensor): (B, S) labels in [0, C), padded with anything past ``target_lengths``.
        input_lengths (Tensor): (B,) frames per utterance. target_lengths (Tensor): (B,) labels.
        reduction (str): "none" ((B,) losses), "sum", or "mean" (over the batch).
        scale_mode (str): each loss times 1 ("none"), 1/L ("target_size") or 1/sqrt(L)
            ("target_size_sqrt", wav2letter's TARGET_SZ_SQRT).
        zero_infinity (bool): utterances without a force-aligned path (L = 0, L > T, T = 0) get loss 0
            instead of inf; their gradients are zero either way.
        implementation (str): "native" (C++/CUDA kernels) or "python" (the autograd reference).
    """
    if scale_mode not in SCALE_MODES:
        raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {scale_mode!r}")
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")
    if not batch_first:
        emissions = emissions.transpose(0, 1)
    if emissions.dtype in (torch.float16, torch.bfloat16):
        emissions = emissions.float()
    transitions = transitions.to(emissions.dtype)
    device = emissions.device
    targets, input_lengths, target_lengths = (
        x.to(device=device, dtype=torch.long) for x in (targets, input_lengths, target_lengths)
    )
    if implementation == "native":
        raw = _NativeLattices.apply(
            emissions.contiguous(), transitions, targets, input_lengths, target_lengths
        )
    elif implementation == "python":
        fully_connected, force_aligned = reference_log_partitions(
            emissions, transitions, targets, input_lengths, target_lengths
        )
        raw = fully_connected - force_aligned
    else:
        raise ValueError(f"implementation must be 'native' or 'python', got {implementation!r}")
    sizes = target_lengths.clamp(min=1).to(raw.dtype)
    scale = {"none": torch.ones_like(sizes), "target_size": 1.0 / sizes, "target_size_sqrt": sizes.rsqrt()}[
        scale_mode
    ]
    feasible = (target_lengths > 0) & (target_lengths <= input_lengths)  # hence input_lengths > 0
    losses = torch.where(feasible, raw * scale, 0.0 if zero_infinity else float("inf"))
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.mean()

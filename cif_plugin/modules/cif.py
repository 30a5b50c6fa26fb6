"""The CIF layer: weight prediction, training-time scaling and integrate-and-fire.

Re-implements ``CifMiddleware`` of the CIF-HieraDist code (Han et al., INTERSPEECH 2023) without
its bugs (docs/differences.md): tail handling for every utterance, explicit fire indices instead of
"non-zero row" detection, float32 maths under fp16/bf16, no batch-composition dependence.
"""

from typing import NamedTuple, Optional

from torch import Tensor, nn

from ..decoding_defaults import DECODING_TAIL_THRESHOLD
from .cif_weight_predictor import CifWeightPredictor
from .integrate_and_fire import integrate_and_fire, scale_to_target_lengths
from .masks import padding_mask_from_lengths

__all__ = ["DECODING_TAIL_THRESHOLD", "Cif", "CifOutput"]


class CifOutput(NamedTuple):
    """Outputs of :class:`Cif`; N = max(1, max_b fire_counts[b]).

    Attributes:
        cif_out (Tensor): (B, N, D) integrated vectors in the input's dtype, zero at padding.
        cif_padding_mask (Tensor): (B, N) bool, True at padding.
        fire_counts (Tensor): (B,) int64 tokens per utterance (tail token included).
        fire_frames (Tensor): (B, N) int64 encoder frame of each token's fire, -1 at padding.
        alpha (Tensor): (B, T) float32 weights that were integrated (scaled when training).
        quantity (Tensor): (B,) float32 sum of the unscaled weights, for the quantity loss.
    """

    cif_out: Tensor
    cif_padding_mask: Tensor
    fire_counts: Tensor
    fire_frames: Tensor
    alpha: Tensor
    quantity: Tensor


class Cif(nn.Module):
    """Continuous integrate-and-fire over encoder frames.

    Args:
        weight_predictor (CifWeightPredictor): produces the per-frame weights.
        input_dim (int): encoder dimension C.
        output_dim (int, optional): CIF output dimension (``--cif-embedding-dim``); when it
            differs from ``input_dim`` a bias-free Linear maps the fired vectors. Default: C.
        threshold (float): firing threshold beta in (0, 1] (``--cif-threshold``). Default: 0.99.
        apply_scaling (bool): in training, scale weights to the target length
            (``--apply-scaling``). Default: True.
        apply_tail_handling (bool): in evaluation, emit the partial last token when its weight
            exceeds ``tail_threshold`` (``--apply-tail-handling``). Default: True.
        tail_threshold (float): the tail firing threshold
            (``--tail-handling-firing-threshold``); a call may override it. Default: 0.5.
    """

    def __init__(
        self,
        weight_predictor: CifWeightPredictor,
        input_dim: int,
        output_dim: Optional[int] = None,
        threshold: float = 0.99,
        apply_scaling: bool = True,
        apply_tail_handling: bool = True,
        tail_threshold: float = 0.5,
    ) -> None:
        super().__init__()
        if not 0 < threshold <= 1:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.weight_predictor = weight_predictor
        output_dim = input_dim if output_dim is None else output_dim
        self.output_proj = nn.Linear(input_dim, output_dim, bias=False) if output_dim != input_dim else None
        self.threshold = threshold
        self.apply_scaling = apply_scaling
        self.apply_tail_handling = apply_tail_handling
        self.tail_threshold = tail_threshold

    def forward(
        self,
        hidden: Tensor,
        lengths: Optional[Tensor] = None,
        target_lengths: Optional[Tensor] = None,
        tail_threshold: Optional[float] = None,
        chunk_size: int = 0,
    ) -> CifOutput:
        """
        Args:
            hidden (Tensor): (B, T, C) encoder output.
            lengths (Tensor, optional): (B,) valid frames. Default: all frames.
            target_lengths (Tensor, optional): (B,) target lengths including ``</s>``; used for
                scaling in training only.
            tail_threshold (float, optional): overrides the module's tail threshold (decoding
                uses 0.4 as published).
            chunk_size (int): frames per chunk of a chunk-causal encoder: the weight predictor
                looks no further than the chunk (0: full context).

        Returns:
            CifOutput
        """
        padding_mask = padding_mask_from_lengths(lengths, hidden.size(1)) if lengths is not None else None
        alpha = self.weight_predictor(hidden, padding_mask, chunk_size)
        quantity = alpha.sum(dim=1)
        if self.training and self.apply_scaling and target_lengths is not None:
            alpha = scale_to_target_lengths(alpha, target_lengths)
        use_tail = self.apply_tail_handling and not self.training
        tail = (self.tail_threshold if tail_threshold is None else tail_threshold) if use_tail else None
        fired = integrate_and_fire(hidden, alpha, lengths, self.threshold, tail)
        cif_out = fired.cif_out.to(hidden.dtype)
        if self.output_proj is not None:
            cif_out = self.output_proj(cif_out)
        return CifOutput(
            cif_out, fired.cif_padding_mask, fired.fire_counts, fired.fire_frames, alpha, quantity
        )

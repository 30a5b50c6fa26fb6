"""Conv2d front end + conformer blocks with max-pooling over time (docs/model.md, "Encoder").

The blocks (from a factory) and the relative positional encoding are handed in: ``cif_plugin.models``
makes them from fairseq's conformer layer, so this module is plain PyTorch and works with any block
that maps ``(x (B, T, C), padding_mask (B, T), pos_emb)`` to (B, T, C); a chunk-causal encoder
(docs/streaming.md) also hands its blocks ``blocked_mask``, a (T, T) bool mask True where a frame
may not attend.
"""

import math
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .chunking import FULL_CONTEXT, chunk_blocked_mask, draw_chunk_size, level_chunk_size
from .conv2d_subsampler import Conv2dSubsampler
from .inference_linear import apply_linear
from .masks import padding_mask_from_lengths

__all__ = ["PoolingConformerEncoder", "max_pool_time", "pooled_lengths"]


def pooled_lengths(lengths: Tensor) -> Tensor:
    """The pooling layer's length rule, for data and mask alike: L -> ceil(L / 2)."""
    return torch.div(lengths + 1, 2, rounding_mode="floor")


def max_pool_time(x: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
    """Max-pool pairs of frames; an odd last frame is pooled alone.

    One length rule for data and mask, L -> ceil(L / 2), and padded frames never win the max, so
    an utterance pools the same whatever its batch (the published code floored the longest
    utterance and ceiled the others, mixing padding into their last frame): 212 -> 106 -> 53.

    Args:
        x (Tensor): (B, T, C) frames.
        lengths (Tensor): (B,) valid frames.

    Returns:
        (Tensor, Tensor): (B, ceil(T / 2), C) pooled frames, zero at padding; (B,) new lengths.
    """
    x = x.masked_fill(padding_mask_from_lengths(lengths, x.size(1)).unsqueeze(-1), float("-inf"))
    # one padded frame always, then ceil(T / 2) pairs: no branch on the length (graph export)
    x = nn.functional.pad(x, (0, 0, 0, 1), value=float("-inf"))
    odd = x[:, 1::2]
    pooled = torch.maximum(x[:, 0::2][:, : odd.size(1)], odd)
    new_lengths = pooled_lengths(lengths)
    return pooled.masked_fill(
        padding_mask_from_lengths(new_lengths, pooled.size(1)).unsqueeze(-1), 0.0
    ), new_lengths


class PoolingConformerEncoder(nn.Module):
    """Subsampler -> x * sqrt(D) -> Linear -> dropout -> blocks, max-pooling after some.

    Args:
        subsampler (Conv2dSubsampler): features (B, T, F) -> (B, T', D) frames and their lengths.
        make_block (callable): returns a new conformer block, called as ``block(x, padding_mask,
            pos_emb)``; called ``num_layers`` times after the input projection is made (so a seed
            gives the same weights as a model built in one piece).
        num_layers (int): conformer blocks (``encoder_layers``).
        pooling_layer_ids (Sequence[int]): 1-based blocks followed by pooling (``pooling_layer_ids``);
            empty for none (``--no-layer-downsampling``).
        dropout (float): dropout after the input projection (``dropout``).
        pos_encoding (callable, optional): (T, B, D) frames -> relative positional encodings handed
            to every block; recomputed after each pooling. None: blocks get ``pos_emb=None``.
        max_source_positions (int): the longest input the positional table is meant for
            (``max_source_positions``).
        scale_embedding (bool): multiply the subsampler output by sqrt(D) (not ``no_scale_embedding``).
        chunk_size (int): output frames per chunk of a chunk-causal encoder; 0 for full context
            (``encoder_chunk_size``).
        left_chunks (int): earlier chunks a frame sees, -1 for all (``encoder_left_chunks``).
        dynamic_chunk_training (bool): in training, draw each batch's chunk size
            (``dynamic_chunk_training``, :func:`~cif_plugin.modules.chunking.draw_chunk_size`).
    """

    def __init__(
        self,
        subsampler: Conv2dSubsampler,
        make_block: Callable[[], nn.Module],
        num_layers: int,
        pooling_layer_ids: Sequence[int],
        dropout: float,
        pos_encoding: Optional[Callable[[Tensor], Tensor]] = None,
        max_source_positions: int = 6000,
        scale_embedding: bool = True,
        chunk_size: int = FULL_CONTEXT,
        left_chunks: int = -1,
        dynamic_chunk_training: bool = False,
    ):
        super().__init__()
        if chunk_size < 0:
            raise ValueError(f"encoder chunk size must be >= 0 (0: full context), got {chunk_size}")
        bad_ids = [i for i in pooling_layer_ids if not 1 <= i <= num_layers]
        if bad_ids:
            raise ValueError(f"pooling layer ids {bad_ids} are outside 1..{num_layers}")
        embed_dim = subsampler.out_proj.out_features
        self.subsampler = subsampler
        self.embed_scale = math.sqrt(embed_dim) if scale_embedding else 1.0
        self.max_source_positions = max_source_positions
        self.pos_encoding = pos_encoding
        self.input_proj = nn.Linear(embed_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(make_block() for _ in range(num_layers))
        self.pooling_layer_ids = set(pooling_layer_ids)
        self.chunk_size, self.left_chunks = chunk_size, left_chunks
        self.dynamic_chunk_training = dynamic_chunk_training

    def batch_chunk_size(self) -> int:
        """The chunk size of the next forward: drawn per batch in dynamic chunk training, else fixed."""
        if self.training and self.dynamic_chunk_training:
            return draw_chunk_size()
        return self.chunk_size

    @property
    def frame_stride(self) -> int:
        """Input frames per encoder frame (8 for the paper: one conv layer and two poolings)."""
        return 2 ** (len(self.subsampler.kernel_sizes) + len(self.pooling_layer_ids))

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) input frame counts -> (B,) encoder frame counts."""
        lengths = self.subsampler.output_lengths(lengths)
        for _ in self.pooling_layer_ids:
            lengths = pooled_lengths(lengths)
        return lengths

    def _positions(self, x: Tensor) -> Optional[Tensor]:
        return self.pos_encoding(x.transpose(0, 1)) if self.pos_encoding is not None else None

    def _blocked_mask(self, x: Tensor, chunk_size: int, poolings_after: int) -> Optional[Tensor]:
        level_chunk = level_chunk_size(chunk_size, poolings_after)
        return chunk_blocked_mask(x.size(1), level_chunk, self.left_chunks, x.device)

    def forward(
        self, features: Tensor, lengths: Tensor, chunk_size: Optional[int] = None
    ) -> Tuple[Tensor, Tensor]:
        """
        Args:
            features (Tensor): (B, T, F) filterbank features.
            lengths (Tensor): (B,) valid frames.
            chunk_size (int, optional): output frames per chunk (0: full context). Default: the
                encoder's ``chunk_size``.

        Returns:
            (Tensor, Tensor): (B, T', D) encoder output, zero at padded frames, and its (B,) lengths.
        """
        x, lengths = self.subsampler(features, lengths)
        x = x * self.embed_scale
        pos_emb = self._positions(x)
        x = self.dropout(apply_linear(self.input_proj, x))
        chunk_size = self.chunk_size if chunk_size is None else chunk_size
        poolings_after = len(self.pooling_layer_ids)
        blocked_mask = self._blocked_mask(x, chunk_size, poolings_after)
        padding_mask = _padding_mask(lengths, x.size(1))
        for layer_id, block in enumerate(self.blocks, start=1):
            if blocked_mask is None:
                x = block(x, padding_mask, pos_emb)
            else:
                x = block(x, padding_mask, pos_emb, blocked_mask=blocked_mask)
            if layer_id in self.pooling_layer_ids:
                x, lengths = max_pool_time(x, lengths)
                padding_mask = _padding_mask(lengths, x.size(1))
                pos_emb = self._positions(x)
                poolings_after -= 1
                blocked_mask = self._blocked_mask(x, chunk_size, poolings_after)
        return (x if padding_mask is None else x.masked_fill(padding_mask.unsqueeze(-1), 0.0)), lengths


def _padding_mask(lengths: Tensor, frames: int) -> Optional[Tensor]:
    """(B, frames) True at padded frames, or None when no frame is padded (a batch of one, or of
    equal lengths): the blocks then skip their masking. Always a mask while traced for export."""
    if not torch.jit.is_tracing() and bool((lengths >= frames).all()):
        return None
    return padding_mask_from_lengths(lengths, frames)

"""Conv2d front end + conformer blocks with max-pooling over time (spec 2.3)."""

import math
from typing import Sequence, Tuple

import torch
from fairseq.modules import RelPositionalEncoding
from torch import Tensor, nn

from .conformer_block import MaskedConformerBlock
from .conv2d_subsampler import Conv2dSubsampler

__all__ = ["PoolingConformerEncoder", "max_pool_time"]


def max_pool_time(x: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
    """Max-pool pairs of frames; an odd last frame is pooled alone.

    One length rule for data and mask, L -> ceil(L / 2), and padded frames never win the max, so
    an utterance pools the same whatever its batch (the reference floored the longest utterance
    and ceiled the others, mixing padding into their last frame). Spec: 212 -> 106 -> 53.

    Args:
        x (Tensor): (B, T, C) frames.
        lengths (Tensor): (B,) valid frames.

    Returns:
        (Tensor, Tensor): (B, ceil(T / 2), C) pooled frames, zero at padding; (B,) new lengths.
    """
    frames = torch.arange(x.size(1), device=x.device)
    x = x.masked_fill((frames >= lengths.unsqueeze(1)).unsqueeze(-1), float("-inf"))
    if x.size(1) % 2:
        x = nn.functional.pad(x, (0, 0, 0, 1), value=float("-inf"))
    pooled = torch.maximum(x[:, 0::2], x[:, 1::2])
    new_lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
    pooled_padding = torch.arange(pooled.size(1), device=x.device) >= new_lengths.unsqueeze(1)
    return pooled.masked_fill(pooled_padding.unsqueeze(-1), 0.0), new_lengths


class PoolingConformerEncoder(nn.Module):
    """Subsampler -> x * sqrt(D) -> Linear -> dropout -> conformer blocks, pooling after some.

    Args:
        input_dim (int): feature bins (``input_feat_per_channel``).
        embed_dim (int): model dimension D (``encoder_embed_dim``).
        ffn_dim (int): conformer feed-forward dimension (``encoder_ffn_embed_dim``).
        num_layers (int): conformer blocks (``encoder_layers``).
        num_heads (int): attention heads (``encoder_attention_heads``).
        dropout (float): dropout (``dropout``).
        depthwise_kernel_size (int): conv module kernel (``conformer_depthwise_conv_kernel_size``).
        pooling_layer_ids (Sequence[int]): 1-based blocks followed by pooling (``pooling_layer_ids``);
            empty for none (``--no-layer-downsampling``).
        conv_channels (Sequence[int]): subsampler channels (``conv2d_output_channels``).
        conv_kernel_sizes (Sequence[int]): subsampler kernels (``conv_kernel_sizes``).
        max_source_positions (int): initial size of the positional table (``max_source_positions``).
        scale_embedding (bool): multiply the subsampler output by sqrt(D) (not ``no_scale_embedding``).
    """

    def __init__(
        self,
        input_dim: int,
        embed_dim: int,
        ffn_dim: int,
        num_layers: int,
        num_heads: int,
        dropout: float,
        depthwise_kernel_size: int,
        pooling_layer_ids: Sequence[int],
        conv_channels: Sequence[int],
        conv_kernel_sizes: Sequence[int],
        max_source_positions: int = 6000,
        scale_embedding: bool = True,
    ):
        super().__init__()
        bad_ids = [i for i in pooling_layer_ids if not 1 <= i <= num_layers]
        if bad_ids:
            raise ValueError(f"pooling layer ids {bad_ids} are outside 1..{num_layers}")
        self.subsampler = Conv2dSubsampler(input_dim, conv_channels, conv_kernel_sizes, embed_dim)
        self.embed_scale = math.sqrt(embed_dim) if scale_embedding else 1.0
        self.max_source_positions = max_source_positions
        self.pos_encoding = RelPositionalEncoding(max_source_positions, embed_dim)
        self.input_proj = nn.Linear(embed_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            MaskedConformerBlock(embed_dim, ffn_dim, num_heads, dropout, depthwise_kernel_size)
            for _ in range(num_layers)
        )
        self.pooling_layer_ids = set(pooling_layer_ids)

    @property
    def frame_stride(self) -> int:
        """Input frames per encoder frame (8 for the paper: one conv layer and two poolings)."""
        return 2 ** (len(self.subsampler.kernel_sizes) + len(self.pooling_layer_ids))

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) input frame counts -> (B,) encoder frame counts."""
        lengths = self.subsampler.output_lengths(lengths)
        for _ in self.pooling_layer_ids:
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")
        return lengths

    def forward(self, features: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """
        Args:
            features (Tensor): (B, T, F) filterbank features.
            lengths (Tensor): (B,) valid frames.

        Returns:
            (Tensor, Tensor): (B, T', D) encoder output, zero at padded frames, and the
            (B, T') padding mask (True at padding).
        """
        x, lengths = self.subsampler(features, lengths)
        x = x * self.embed_scale
        pos_emb = self.pos_encoding(x.transpose(0, 1))
        x = self.dropout(self.input_proj(x))
        for layer_id, block in enumerate(self.blocks, start=1):
            padding_mask = torch.arange(x.size(1), device=x.device) >= lengths.unsqueeze(1)
            x = block(x, padding_mask, pos_emb)
            if layer_id in self.pooling_layer_ids:
                x, lengths = max_pool_time(x, lengths)
                pos_emb = self.pos_encoding(x.transpose(0, 1))
        padding_mask = torch.arange(x.size(1), device=x.device) >= lengths.unsqueeze(1)
        return x.masked_fill(padding_mask.unsqueeze(-1), 0.0), padding_mask

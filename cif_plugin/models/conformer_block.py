"""Conformer block whose output does not depend on padding (docs/differences.md, "Padding")."""

from typing import Optional, Tuple

import torch
from fairseq.modules.conformer_layer import ConformerEncoderLayer, ConvolutionModule, FeedForwardModule
from torch import Tensor, nn

from ..modules.inference_linear import apply_linear, linear
from .rel_position_attention import Float32SoftmaxRelPositionAttention

__all__ = ["BlockCache", "MaskedConformerBlock"]


class MaskedConformerBlock(ConformerEncoderLayer):
    """fairseq's ``ConformerEncoderLayer`` (ESPnet rel-pos attention) with padding kept out.

    Same parameters as the stock layer (so the published parameter count holds); two changes:
    the attention softmax runs in float32 (:class:`Float32SoftmaxRelPositionAttention`), and padded
    frames are zeroed right before the depthwise convolution, so valid frames never see padding
    content. (Zeroing before the convolution module would not do: its first LayerNorm turns a
    zero frame into its bias.) In training, BatchNorm statistics still include padded frames.
    Works batch first, (B, T, C).

    Args:
        embed_dim (int): model dimension (``encoder_embed_dim``).
        ffn_dim (int): feed-forward hidden dimension (``encoder_ffn_embed_dim``).
        num_heads (int): attention heads (``encoder_attention_heads``).
        dropout (float): dropout everywhere in the block (``dropout``).
        depthwise_kernel_size (int): odd kernel width (``conformer_depthwise_conv_kernel_size``).
        causal_conv (bool): the depthwise convolution sees the current and the k - 1 previous frames
            only (``causal_conv``; streaming, docs/streaming.md) instead of k // 2 on each side.
    """

    def __init__(
        self,
        embed_dim: int,
        ffn_dim: int,
        num_heads: int,
        dropout: float,
        depthwise_kernel_size: int,
        causal_conv: bool = False,
    ):
        if embed_dim % num_heads:
            raise ValueError(f"{num_heads} heads do not divide dimension {embed_dim}")
        if depthwise_kernel_size % 2 == 0:
            raise ValueError(f"depthwise kernel size must be odd, got {depthwise_kernel_size}")
        super().__init__(
            embed_dim, ffn_dim, num_heads, dropout, use_fp16=False,
            depthwise_conv_kernel_size=depthwise_kernel_size, attn_type="espnet", pos_enc_type="rel_pos",
        )  # fmt: skip
        self.self_attn = Float32SoftmaxRelPositionAttention(embed_dim, num_heads, dropout=dropout)
        self.causal_conv = causal_conv

    def forward(
        self,
        x: Tensor,
        padding_mask: Optional[Tensor],
        pos_emb: Tensor,
        blocked_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """
        Args:
            x (Tensor): (B, T, C) input.
            padding_mask (Tensor, optional): (B, T) bool, True at padded frames.
            pos_emb (Tensor): (2T - 1, 1, C) relative positional encodings.
            blocked_mask (Tensor, optional): (T, T) bool, True where frame i may not attend to
                frame j (a chunk-causal encoder).

        Returns:
            Tensor: (B, T, C) output.
        """
        x = torch.add(x, _feed_forward(self.ffn1, x), alpha=0.5)
        attended = self.self_attn.attend(self.self_attn_layer_norm(x), padding_mask, pos_emb, blocked_mask)
        x = x + self.self_attn_dropout(attended)
        x = x + _masked_convolution(self.conv_module, x, padding_mask, self.causal_conv)
        x = torch.add(x, _feed_forward(self.ffn2, x), alpha=0.5)
        return self.final_layer_norm(x)

    def forward_chunk(self, x: Tensor, cache: "BlockCache", pos_encoding) -> Tensor:
        """One chunk of a stream (batch 1, every frame valid): what :meth:`forward` computes for
        these frames under a chunk mask, with the earlier frames read from ``cache``.

        Args:
            x (Tensor): (1, C', D) the chunk's frames.
            cache (BlockCache): keys and values of the visible earlier frames and the last k - 1
                inputs of the depthwise convolution; updated in place.
            pos_encoding: the encoder's relative positional encoding module.

        Returns:
            Tensor: (1, C', D) output.
        """
        if not self.causal_conv:
            raise ValueError("streaming needs a causal depthwise convolution (--causal-conv)")
        x = torch.add(x, _feed_forward(self.ffn1, x), alpha=0.5)
        attended, cache.keys, cache.values = self.self_attn.attend_chunk(
            self.self_attn_layer_norm(x), cache.keys, cache.values, pos_encoding
        )
        cache.trim()
        x = x + attended
        convolved, cache.conv_inputs = _streaming_convolution(self.conv_module, x, cache.conv_inputs)
        x = x + convolved
        x = torch.add(x, _feed_forward(self.ffn2, x), alpha=0.5)
        return self.final_layer_norm(x)


class BlockCache:
    """What a :class:`MaskedConformerBlock` keeps between the chunks of a stream.

    Args:
        max_frames (int, optional): earlier frames attention may see (left chunks x chunk frames);
            None for all.
    """

    def __init__(self, max_frames: Optional[int] = None):
        self.max_frames = max_frames
        self.keys: Optional[Tensor] = None  # (1, H, L, d_k)
        self.values: Optional[Tensor] = None  # (1, H, L, d_k)
        self.conv_inputs: Optional[Tensor] = None  # (1, D, k - 1) GLU outputs before the depthwise conv

    def trim(self) -> None:
        """Forget keys and values beyond the visible left context (kept whole for -1 left chunks)."""
        if self.max_frames is not None and self.keys.size(2) > self.max_frames:
            start = self.keys.size(2) - self.max_frames  # not -max_frames: 0 left chunks keep nothing
            self.keys, self.values = self.keys[:, :, start:], self.values[:, :, start:]


def _feed_forward(module: FeedForwardModule, x: Tensor) -> Tensor:
    """``FeedForwardModule.forward`` (LayerNorm, Linear, activation, Linear) through ``inference_linear``."""
    x = module.dropout1(module.activation(apply_linear(module.w_1, module.layer_norm(x))))
    return module.dropout2(apply_linear(module.w_2, x))


def _masked_convolution(
    module: ConvolutionModule, x: Tensor, padding_mask: Optional[Tensor], causal: bool = False
) -> Tensor:
    """The steps of ``ConvolutionModule.forward`` with padded frames zeroed before the depthwise conv.

    The kernel-1 convolutions run as the linear maps they are, on (B, T, C) frames. The depthwise
    convolution runs as a (k x 1) 2-D convolution over frames laid out channels last: the same sums,
    several times faster on the CPU than the 1-D depthwise kernel. ``causal``: k - 1 zero frames on
    the left instead of k // 2 on each side.
    """
    x = _gated(module, x)
    if padding_mask is not None:
        x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
    x = x.transpose(1, 2)  # (B, C, T)
    kernel = module.depthwise_conv.kernel_size[0]
    if causal:
        x = nn.functional.pad(x, (kernel - 1, 0))
    return _depthwise_and_out(module, x, padding=0 if causal else kernel // 2)


def _streaming_convolution(
    module: ConvolutionModule, x: Tensor, previous: Optional[Tensor]
) -> Tuple[Tensor, Tensor]:
    """The causal convolution module over one chunk, the k - 1 previous GLU outputs read from
    ``previous`` (zeros at the start of a stream); returns the output and the new ``previous``."""
    x = _gated(module, x).transpose(1, 2)  # (1, C, T)
    kernel = module.depthwise_conv.kernel_size[0]
    if previous is None:
        previous = x.new_zeros(x.size(0), x.size(1), kernel - 1)
    x = torch.cat([previous, x], dim=2)
    return _depthwise_and_out(module, x, padding=0), x[:, :, x.size(2) - (kernel - 1) :]


def _gated(module: ConvolutionModule, x: Tensor) -> Tensor:
    """(B, T, C) -> LayerNorm, kernel-1 convolution as a linear map, GLU: (B, T, C)."""
    return nn.functional.glu(linear(module.layer_norm(x), *_weights(module.pointwise_conv1)), dim=-1)


def _depthwise_and_out(module: ConvolutionModule, x: Tensor, padding: int) -> Tensor:
    """(B, C, T + pad) GLU outputs -> depthwise conv, BatchNorm, activation, pointwise conv: (B, T, C)."""
    depthwise = module.depthwise_conv
    x = nn.functional.conv2d(
        x.unsqueeze(-1), depthwise.weight.unsqueeze(-1), depthwise.bias,
        padding=(padding, 0), groups=depthwise.groups,
    ).squeeze(-1)  # fmt: skip
    x = module.activation(module.batch_norm(x)).transpose(1, 2)
    return module.dropout(linear(x, *_weights(module.pointwise_conv2)))


def _weights(conv: nn.Conv1d) -> Tuple[Tensor, Optional[Tensor]]:
    return conv.weight, conv.bias

"""Conformer block whose output does not depend on padding (docs/differences.md, "Padding")."""

from typing import Optional

from fairseq.modules.conformer_layer import ConformerEncoderLayer, ConvolutionModule, FeedForwardModule
from torch import Tensor, nn

from ..modules.inference_linear import apply_linear, linear
from .rel_position_attention import Float32SoftmaxRelPositionAttention

__all__ = ["MaskedConformerBlock"]


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
    """

    def __init__(
        self, embed_dim: int, ffn_dim: int, num_heads: int, dropout: float, depthwise_kernel_size: int
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

    def forward(self, x: Tensor, padding_mask: Optional[Tensor], pos_emb: Tensor) -> Tensor:
        """
        Args:
            x (Tensor): (B, T, C) input.
            padding_mask (Tensor, optional): (B, T) bool, True at padded frames.
            pos_emb (Tensor): (2T - 1, 1, C) relative positional encodings.

        Returns:
            Tensor: (B, T, C) output.
        """
        x = x + 0.5 * _feed_forward(self.ffn1, x)
        attended = self.self_attn.attend(self.self_attn_layer_norm(x), padding_mask, pos_emb)
        x = x + self.self_attn_dropout(attended)
        x = x + _masked_convolution(self.conv_module, x, padding_mask)
        x = x + 0.5 * _feed_forward(self.ffn2, x)
        return self.final_layer_norm(x)


def _feed_forward(module: FeedForwardModule, x: Tensor) -> Tensor:
    """``FeedForwardModule.forward`` (LayerNorm, Linear, activation, Linear) through ``inference_linear``."""
    x = module.dropout1(module.activation(apply_linear(module.w_1, module.layer_norm(x))))
    return module.dropout2(apply_linear(module.w_2, x))


def _masked_convolution(module: ConvolutionModule, x: Tensor, padding_mask: Optional[Tensor]) -> Tensor:
    """The steps of ``ConvolutionModule.forward`` with padded frames zeroed before the depthwise conv.

    The kernel-1 convolutions run as the linear maps they are, on (B, T, C) frames. The depthwise
    convolution runs as a (k x 1) 2-D convolution over frames laid out channels last: the same sums,
    several times faster on the CPU than the 1-D depthwise kernel.
    """
    pointwise1, depthwise, pointwise2 = module.pointwise_conv1, module.depthwise_conv, module.pointwise_conv2
    x = linear(module.layer_norm(x), pointwise1.weight, pointwise1.bias)
    x = nn.functional.glu(x, dim=-1)  # (B, T, C)
    if padding_mask is not None:
        x = x.masked_fill(padding_mask.unsqueeze(-1), 0.0)
    x = nn.functional.conv2d(
        x.transpose(1, 2).unsqueeze(-1), depthwise.weight.unsqueeze(-1), depthwise.bias,
        padding=(depthwise.padding[0], 0), groups=depthwise.groups,
    ).squeeze(-1)  # fmt: skip
    x = module.activation(module.batch_norm(x)).transpose(1, 2)
    return module.dropout(linear(x, pointwise2.weight, pointwise2.bias))

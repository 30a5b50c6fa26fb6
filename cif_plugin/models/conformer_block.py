"""Conformer block whose output does not depend on padding (docs/differences.md, "Padding")."""

from typing import Optional

from fairseq.modules.conformer_layer import ConformerEncoderLayer, ConvolutionModule
from torch import Tensor

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
        x = x + 0.5 * self.ffn1(x)
        attn_in = self.self_attn_layer_norm(x).transpose(0, 1)  # (T, B, C) for fairseq's attention
        attn_out, _ = self.self_attn(
            query=attn_in, key=attn_in, value=attn_in, key_padding_mask=padding_mask, pos_emb=pos_emb
        )
        x = x + self.self_attn_dropout(attn_out.transpose(0, 1))
        x = x + _masked_convolution(self.conv_module, x, padding_mask)
        x = x + 0.5 * self.ffn2(x)
        return self.final_layer_norm(x)


def _masked_convolution(module: ConvolutionModule, x: Tensor, padding_mask: Optional[Tensor]) -> Tensor:
    """The steps of ``ConvolutionModule.forward`` with padded frames zeroed before the depthwise conv."""
    x = module.glu(module.pointwise_conv1(module.layer_norm(x).transpose(1, 2)))  # (B, C, T)
    if padding_mask is not None:
        x = x.masked_fill(padding_mask.unsqueeze(1), 0.0)
    x = module.activation(module.batch_norm(module.depthwise_conv(x)))
    return module.dropout(module.pointwise_conv2(x)).transpose(1, 2)

"""The conformer block's fast path equals fairseq's own modules run step by step."""

import pytest
import torch
from fairseq.modules import RelPositionalEncoding

from cif_plugin.models.conformer_block import MaskedConformerBlock


def _reference_block(block: MaskedConformerBlock, x, padding_mask, pos_emb):
    """The block through fairseq's time-first attention ``forward`` and ``ConvolutionModule`` layers."""
    x = x + 0.5 * block.ffn1(x)
    attn_in = block.self_attn_layer_norm(x).transpose(0, 1)
    attn_out, _ = block.self_attn(
        query=attn_in, key=attn_in, value=attn_in, key_padding_mask=padding_mask, pos_emb=pos_emb
    )
    x = x + attn_out.transpose(0, 1)
    conv = block.conv_module
    y = conv.glu(conv.pointwise_conv1(conv.layer_norm(x).transpose(1, 2)))  # (B, C, T)
    if padding_mask is not None:
        y = y.masked_fill(padding_mask.unsqueeze(1), 0.0)
    y = conv.pointwise_conv2(conv.activation(conv.batch_norm(conv.depthwise_conv(y))))
    x = x + y.transpose(1, 2)
    return block.final_layer_norm(x + 0.5 * block.ffn2(x))


@pytest.mark.parametrize("lengths", [[23, 23], [23, 9], [23, 1]])
def test_block_equals_fairseq_modules_with_and_without_padding(lengths):
    torch.manual_seed(0)
    block = MaskedConformerBlock(32, 64, 4, dropout=0.1, depthwise_kernel_size=7).eval()
    with torch.no_grad():  # a trained-looking BatchNorm, so its statistics matter
        block.conv_module.batch_norm.running_mean.normal_()
        block.conv_module.batch_norm.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 23, 32)
    padding_mask = torch.arange(23)[None] >= torch.tensor(lengths)[:, None]
    pos_emb = RelPositionalEncoding(100, 32)(x.transpose(0, 1))
    with torch.no_grad():
        fast = block(x, padding_mask, pos_emb)
        expected = _reference_block(block, x, padding_mask if padding_mask.any() else None, pos_emb)
    valid = ~padding_mask
    torch.testing.assert_close(fast[valid], expected[valid], atol=1e-5, rtol=1e-5)


def test_half_precision_keeps_the_float32_softmax_path():
    """In bfloat16 the attention takes the explicit float32 softmax and agrees with float32."""
    torch.manual_seed(1)
    block = MaskedConformerBlock(32, 64, 4, dropout=0.0, depthwise_kernel_size=7).eval()
    x = torch.randn(1, 17, 32)
    pos_emb = RelPositionalEncoding(100, 32)(x.transpose(0, 1))
    padding_mask = torch.zeros(1, 17, dtype=torch.bool)
    with torch.no_grad():
        full = block(x, padding_mask, pos_emb)
        half = block.to(torch.bfloat16)(x.bfloat16(), padding_mask, pos_emb.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), full, atol=0.1, rtol=0.05)

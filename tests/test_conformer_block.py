"""The conformer block's fast path equals fairseq's own modules run step by step."""

import pytest
import torch
from fairseq.modules import RelPositionalEncoding
from torch import nn

from cif_plugin.models.conformer_block import MaskedConformerBlock
from cif_plugin.modules.conv2d_subsampler import Conv2dSubsampler, _strided_patches


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


def _trace(module, *example):
    """``torch.jit.trace`` as the ONNX export traces: gradients off, no re-run check (the kept
    weight copies make a second run differ in its graph, not its values)."""
    with torch.no_grad():
        return torch.jit.trace(module, example, check_trace=False)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("blocked", [False, True])
def test_traced_block_equals_the_eager_block_with_padding(blocked):
    """The traced attention (scale on the queries, padding as an additive bias; docs/onnx.md) gives
    the eager block's output on another length than the traced one, padded, with a chunk mask."""
    torch.manual_seed(2)
    block = MaskedConformerBlock(32, 64, 4, dropout=0.0, depthwise_kernel_size=7).eval()
    encoding = RelPositionalEncoding(100, 32)

    def chunk_mask(frames):  # chunks of 4 frames seeing themselves and the chunks before
        chunk = torch.arange(frames) // 4
        return chunk[None, :] > chunk[:, None]

    class Traced(nn.Module):
        def __init__(self):
            super().__init__()
            self.block, self.encoding = block, encoding

        def forward(self, x, padding_mask):
            mask = chunk_mask(x.size(1)) if blocked else None
            return self.block(x, padding_mask, self.encoding(x.transpose(0, 1)), mask)

    traced = _trace(Traced(), torch.randn(1, 9, 32), torch.zeros(1, 9, dtype=torch.bool))
    x = torch.randn(2, 23, 32)
    padding_mask = torch.arange(23)[None] >= torch.tensor([23, 11])[:, None]
    with torch.no_grad():
        mask = chunk_mask(23) if blocked else None
        expected = block(x, padding_mask, encoding(x.transpose(0, 1)), mask)
        got = traced(x, padding_mask)
    valid = ~padding_mask
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-5, rtol=1e-5)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_traced_block_with_kept_positions_equals_the_eager_block_shorter_and_longer():
    """A block traced with its projected encodings kept as a 12-frame table (what the ONNX export
    does) gives the eager block's output on inputs within the table and beyond it, and the table
    is a constant of the traced graph."""
    from cif_plugin.models.rel_positional_encoding import ThreadSafeRelPositionalEncoding

    torch.manual_seed(3)
    block = MaskedConformerBlock(32, 64, 4, dropout=0.0, depthwise_kernel_size=7).eval()
    encoding = ThreadSafeRelPositionalEncoding(100, 32)

    class Traced(nn.Module):
        def __init__(self):
            super().__init__()
            self.block, self.encoding = block, encoding

        def forward(self, x):
            return self.block(x, None, self.encoding(x.transpose(0, 1)))

    block.self_attn.keep_traced_positions(encoding(torch.zeros(12, 1, 32)))
    try:
        traced = _trace(Traced(), torch.randn(1, 9, 32))
    finally:
        block.self_attn.keep_traced_positions(None)
    for frames in (1, 5, 12, 13, 30):
        x = torch.randn(2, frames, 32)
        with torch.no_grad():
            torch.testing.assert_close(
                traced(x), block(x, None, encoding(x.transpose(0, 1))), atol=1e-5, rtol=1e-5
            )
    graph = traced.inlined_graph  # held: its nodes live as long as it does
    constants = [
        node.output().type().sizes()
        for node in graph.findAllNodes("prim::Constant")
        if node.output().type().kind() == "TensorType"
    ]
    assert [1, 4, 2 * 12 - 1, 8] in constants  # the table (1, H, 2L - 1, d_k) is in the graph


@pytest.mark.parametrize("frames, bins, kernel", [(10, 20, 3), (11, 21, 3), (12, 9, 5), (5, 7, 5)])
def test_strided_patches_equal_unfold(frames, bins, kernel):
    features = torch.randn(2, frames, bins)
    expected = features.unfold(1, kernel, 2).unfold(2, kernel, 2)
    torch.testing.assert_close(_strided_patches(features, kernel), expected, rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_traced_front_end_takes_other_lengths_than_the_traced_one():
    """The graph export traces the strided patches (ONNX has no unfold); the trace must not keep
    the example's length."""
    torch.manual_seed(0)
    subsampler = Conv2dSubsampler(20, [6], [3], 8).eval()
    traced = _trace(subsampler, torch.randn(1, 30, 20), torch.tensor([30]))
    with torch.no_grad():
        for frames in (9, 30, 57):
            features, lengths = torch.randn(2, frames, 20), torch.tensor([frames, frames - 4])
            torch.testing.assert_close(traced(features, lengths), subsampler(features, lengths))


@pytest.mark.parametrize("kernel", [3, 5])
def test_one_layer_front_end_equals_the_convolution_and_permute(kernel):
    """The single-conv subsampler's patch product equals Conv2d + ReLU + (B, T', C x F') layout."""
    torch.manual_seed(kernel)
    subsampler = Conv2dSubsampler(80, [16], [kernel], 32)
    features, lengths = torch.randn(2, 41, 80), torch.tensor([41, 30])
    conv = subsampler.convs
    stock = conv(features.unsqueeze(1))
    stock = stock.permute(0, 2, 1, 3).reshape(2, stock.size(2), -1)
    expected = nn.functional.linear(stock, subsampler.out_proj.weight, subsampler.out_proj.bias)
    expected = expected.masked_fill(
        (torch.arange(stock.size(1)) >= subsampler.output_lengths(lengths)[:, None])[..., None], 0.0
    )
    got, out_lengths = subsampler(features, lengths)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # inference reads a kept copy of the projection in frequency-major order
        torch.testing.assert_close(subsampler(features, lengths)[0], expected, atol=1e-5, rtol=1e-5)
    got.sum().backward()  # the patch product trains like the convolution
    assert subsampler.convs[0].weight.grad is not None


def test_kept_position_projections_equal_the_projection_of_each_length():
    """Inference slices the projection of the longest encodings seen: any length, in any order, gives
    linear_pos of its own encodings, and a changed weight is read at once."""
    from cif_plugin.models.rel_position_attention import Float32SoftmaxRelPositionAttention
    from cif_plugin.models.rel_positional_encoding import ThreadSafeRelPositionalEncoding
    from cif_plugin.modules.inference_linear import weight_cache

    torch.manual_seed(4)
    attention = Float32SoftmaxRelPositionAttention(32, 4, dropout=0.0).eval()
    encoding = ThreadSafeRelPositionalEncoding(16, 32)  # grows its table past 16 frames

    def expected(length):
        return nn.functional.linear(
            encoding(torch.zeros(length, 1, 32)).transpose(0, 1), attention.linear_pos.weight
        )

    with torch.no_grad():
        for length in [5, 40, 1, 17, 40, 64, 3]:
            got = attention._projected_positions(encoding(torch.zeros(length, 1, 32)))
            torch.testing.assert_close(got, expected(length), atol=1e-6, rtol=1e-6)
        kept_encodings, _, kept_projection = weight_cache(attention.linear_pos.weight)["positions"]
        assert kept_encodings.size(0) == 2 * 64 - 1  # the longest seen is kept, and shorter ones sliced
        shorter = attention._projected_positions(encoding(torch.zeros(3, 1, 32)))
        assert shorter.untyped_storage().data_ptr() == kept_projection.untyped_storage().data_ptr()
        attention.linear_pos.weight.mul_(-1.0)
        got = attention._projected_positions(encoding(torch.zeros(7, 1, 32)))
        torch.testing.assert_close(got, expected(7), atol=1e-6, rtol=1e-6)
        encoding.pe.mul_(0.5)  # the table written in place: the kept projection is stale
        got = attention._projected_positions(encoding(torch.zeros(5, 1, 32)))  # within the kept 7
        torch.testing.assert_close(got, expected(5), atol=1e-6, rtol=1e-6)
        other = torch.randn(13, 1, 32)  # not the middle of the kept encodings: projected afresh
        torch.testing.assert_close(
            attention._projected_positions(other),
            nn.functional.linear(other.transpose(0, 1), attention.linear_pos.weight),
            atol=1e-6,
            rtol=1e-6,
        )


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("frames", [1, 2, 9])
def test_shifted_scores_are_fairseqs_rel_shift(frames):
    """The strided view of inference and the flat slices of a traced graph (eager, and traced from
    another length) select what fairseq's padded copy does."""
    from cif_plugin.models.rel_position_attention import Float32SoftmaxRelPositionAttention, _traced_shift

    attention = Float32SoftmaxRelPositionAttention(8, 2, dropout=0.0).eval()
    scores = torch.randn(3, 2, frames, 2 * frames - 1)
    traced = _trace(lambda x: _traced_shift(x), torch.randn(1, 2, 5, 9))
    with torch.no_grad():
        expected = attention.rel_shift(scores)
        torch.testing.assert_close(attention._shifted(scores), expected, atol=0, rtol=0)
        torch.testing.assert_close(_traced_shift(scores), expected, atol=0, rtol=0)
        torch.testing.assert_close(traced(scores), expected, atol=0, rtol=0)

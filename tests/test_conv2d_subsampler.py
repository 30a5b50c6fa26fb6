"""The one-convolution front end's matrix-product form against ``nn.Conv2d`` itself."""

import pytest
import torch

from cif_plugin.modules.conv2d_subsampler import Conv2dSubsampler, _strided_patches


def _reference(subsampler: Conv2dSubsampler, features: torch.Tensor) -> torch.Tensor:
    """Conv2d + ReLU, channels then frequency per frame, then the projection (padding not zeroed)."""
    x = subsampler.convs(features.unsqueeze(1))  # (B, C, T', F')
    batch, channels, frames, bins = x.shape
    return subsampler.out_proj(x.permute(0, 2, 1, 3).reshape(batch, frames, channels * bins))


@pytest.mark.parametrize("kernel", [3, 5])
def test_single_convolution_as_a_matrix_product_equals_conv2d(kernel):
    torch.manual_seed(kernel)
    subsampler = Conv2dSubsampler(20, [6], [kernel], 8).double()
    features = torch.randn(2, 31, 20, dtype=torch.float64)
    lengths = torch.tensor([31, 31])
    for grad in (True, False):
        with torch.set_grad_enabled(grad):
            out, out_lengths = subsampler(features, lengths)
        torch.testing.assert_close(out, _reference(subsampler, features), rtol=1e-12, atol=1e-12)
    assert out_lengths.tolist() == [(31 - kernel) // 2 + 1] * 2


@pytest.mark.parametrize("frames, bins, kernel", [(10, 20, 3), (11, 21, 3), (12, 9, 5), (5, 7, 5)])
def test_strided_patches_equal_unfold(frames, bins, kernel):
    features = torch.randn(2, frames, bins)
    expected = features.unfold(1, kernel, 2).unfold(2, kernel, 2)
    torch.testing.assert_close(_strided_patches(features, kernel), expected, rtol=0, atol=0)


def test_traced_subsampler_takes_other_lengths_than_the_traced_one():
    """The graph export traces the strided patches (ONNX has no unfold); the trace must not keep
    the example's length."""
    torch.manual_seed(0)
    subsampler = Conv2dSubsampler(20, [6], [3], 8).eval()
    with torch.no_grad():
        traced = torch.jit.trace(subsampler, (torch.randn(1, 30, 20), torch.tensor([30])), check_trace=False)
        for frames in (9, 30, 57):
            features, lengths = torch.randn(2, frames, 20), torch.tensor([frames, frames - 4])
            torch.testing.assert_close(traced(features, lengths), subsampler(features, lengths))

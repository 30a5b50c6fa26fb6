"""ESPnet-style Conv2d front end (docs/model.md, "Front end")."""

from typing import Sequence, Tuple

import torch
from torch import Tensor, nn

from .inference_linear import apply_linear, derived, linear

__all__ = ["Conv2dSubsampler"]


class Conv2dSubsampler(nn.Module):
    """Stacked Conv2d(k x k, stride 2, no padding) + ReLU over (time, frequency), then a Linear.

    Time and frequency both shrink by L -> floor((L - k) / 2) + 1 per layer (for k = 3 this is the
    reference's floor((L - 1) / 2)): 426 frames -> 212, 80 bins -> 39. Because nothing is padded,
    a valid output frame only ever sees valid input frames; padded output frames are zeroed.

    Args:
        input_dim (int): feature bins per frame (``input_feat_per_channel``, 80).
        channels (Sequence[int]): output channels per conv layer (``--conv2d-output-channels``).
        kernel_sizes (Sequence[int]): kernel size per conv layer (``--conv-kernel-sizes``).
        output_dim (int): output dimension (``encoder_embed_dim``).
    """

    def __init__(self, input_dim: int, channels: Sequence[int], kernel_sizes: Sequence[int], output_dim: int):
        super().__init__()
        if len(channels) != len(kernel_sizes) or not channels:
            raise ValueError(
                f"need one kernel size per conv layer, got {list(channels)} and {list(kernel_sizes)}"
            )
        self.kernel_sizes = list(kernel_sizes)
        layers, in_channels, freq = [], 1, input_dim
        for out_channels, kernel in zip(channels, kernel_sizes, strict=True):
            layers += [nn.Conv2d(in_channels, out_channels, kernel, stride=2), nn.ReLU()]
            in_channels, freq = out_channels, (freq - kernel) // 2 + 1
        if freq < 1:
            raise ValueError(f"{input_dim} feature bins are too few for kernel sizes {list(kernel_sizes)}")
        self.convs = nn.Sequential(*layers)
        self.output_bins = freq  # frequency bins left after the convolutions
        self.out_proj = nn.Linear(in_channels * freq, output_dim)

    def output_lengths(self, lengths: Tensor) -> Tensor:
        """(B,) input frame counts -> (B,) output frame counts."""
        for kernel in self.kernel_sizes:
            lengths = torch.div(lengths - kernel, 2, rounding_mode="floor") + 1
        return lengths.clamp(min=0)

    def forward(self, features: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        """
        Args:
            features (Tensor): (B, T, F) input features.
            lengths (Tensor): (B,) valid frames per utterance.

        Returns:
            (Tensor, Tensor): (B, T', D) output, zero at padded frames, and (B,) output lengths.
        """
        if len(self.kernel_sizes) == 1:
            x = _single_conv_frames(self.convs[0], features)
            x = linear(x, self._frequency_major_weight(self.output_bins), self.out_proj.bias)
        else:
            x = self.convs(features.unsqueeze(1))  # (B, channels, T', F')
            batch, channels, frames, freq = x.shape
            x = apply_linear(self.out_proj, x.permute(0, 2, 1, 3).reshape(batch, frames, channels * freq))
        frames = x.size(1)
        out_lengths = self.output_lengths(lengths)
        padding_mask = torch.arange(frames, device=x.device) >= out_lengths.unsqueeze(1)
        return x.masked_fill(padding_mask.unsqueeze(-1), 0.0), out_lengths

    def _frequency_major_weight(self, freq: int) -> Tensor:
        """``out_proj``'s weight with its inputs in (frequency, channel) order instead of (channel,
        frequency): (D, F' x C). Kept with the weight in inference."""

        weight = self.out_proj.weight
        return derived(
            (weight,),
            "frequency major",
            lambda: weight.view(weight.size(0), -1, freq).transpose(1, 2).reshape(weight.size(0), -1),
        )


def _single_conv_frames(conv: nn.Conv2d, features: Tensor) -> Tensor:
    """ReLU(conv(features)) as (B, T', F' x channels) frames, frequency-major, for a one-channel input.

    The same sums as ``conv``, as one matrix product of every output position's (k x k) patch with
    the (k x k, channels) kernel, bias included: several times faster than the convolution on the
    CPU, and its result needs no copy into frame order (the caller's projection reads the frequency-
    major layout).
    """
    kernel = conv.kernel_size[0]
    if torch.jit.is_tracing():
        patches = _strided_patches(features, kernel)
    else:
        patches = features.unfold(1, kernel, 2).unfold(2, kernel, 2)  # (B, T', F', k, k)
    batch, frames, freq = patches.shape[:3]
    x = torch.addmm(
        conv.bias, patches.reshape(-1, kernel * kernel), conv.weight.view(conv.out_channels, -1).t()
    )
    return torch.relu_(x).view(batch, frames, freq * conv.out_channels)


def _strided_patches(features: Tensor, kernel: int) -> Tensor:
    """``features.unfold(1, kernel, 2).unfold(2, kernel, 2)`` as (B, T', F', k, k), from k x k strided
    slices (one per kernel tap): ONNX has no unfold, and the traced convolution it replaces spent
    more time reordering its output into frames than convolving (onnxruntime, CPU)."""
    frames = (features.size(1) - kernel) // 2 + 1
    freq = (features.size(2) - kernel) // 2 + 1
    taps = [
        features[:, i : i + 2 * frames - 1 : 2, j : j + 2 * freq - 1 : 2]
        for i in range(kernel)
        for j in range(kernel)
    ]
    return torch.stack(taps, dim=-1).view(features.size(0), frames, freq, kernel, kernel)

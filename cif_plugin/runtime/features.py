"""Model input features without torch: Kaldi fbank and the model's evaluation transforms
(utterance or global CMVN) in numpy, as the ONNX manifest lists them.

The filterbank follows Kaldi's ``compute-fbank-feats`` with torchaudio's ``compliance.kaldi.fbank``
defaults, which training and the PyTorch recogniser use: 25 ms frames every 10 ms without padding
at the edges, no dither, DC offset removed, pre-emphasis 0.97, Povey window, a 512-point power
spectrum, 80 triangular Mel bins from 20 Hz to Nyquist, natural log floored at float32's epsilon,
16-bit sample scale. tests/test_onnx_export.py checks it within 1e-3 of torchaudio.
"""

import functools
from pathlib import Path
from typing import Dict, List

import numpy as np

__all__ = ["NumpyFeatures", "numpy_fbank"]

_SAMPLE_SCALE = 32768.0  # Kaldi reads 16-bit samples
_FRAME_MS, _SHIFT_MS, _PREEMPHASIS, _LOW_HZ = 25.0, 10.0, 0.97, 20.0


def numpy_fbank(samples: np.ndarray, sample_rate: int = 16000, num_mel_bins: int = 80) -> np.ndarray:
    """(samples,) float waveform in [-1, 1] -> (frames, num_mel_bins) float32 log-Mel filterbanks."""
    length, shift = int(sample_rate * _FRAME_MS / 1000), int(sample_rate * _SHIFT_MS / 1000)
    samples = np.asarray(samples, dtype=np.float64) * _SAMPLE_SCALE
    if samples.ndim != 1:
        raise ValueError(f"fbank needs a 1-D waveform, got shape {samples.shape}")
    if samples.size < length:
        return np.zeros((0, num_mel_bins), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, length)[::shift]  # (frames, length)
    frames = frames - frames.mean(axis=1, keepdims=True)
    # pre-emphasis; the first sample is taken against itself, as Kaldi does
    frames = frames - _PREEMPHASIS * np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    fft_size = 1 << (length - 1).bit_length()  # the next power of two
    spectrum = np.fft.rfft(frames * _window(length), n=fft_size)
    power = spectrum.real**2 + spectrum.imag**2  # (frames, fft_size / 2 + 1)
    # each filter covers a run of neighbouring FFT bins: sums over those runs, not a dense product
    columns, weights, starts = _mel_runs(num_mel_bins, fft_size, sample_rate)
    energies = np.add.reduceat(power[:, columns] * weights, starts, axis=1)
    return np.log(np.maximum(energies, np.finfo(np.float32).eps)).astype(np.float32)


@functools.lru_cache(maxsize=4)
def _window(length: int) -> np.ndarray:
    """Povey's window: a symmetric Hann window to the power 0.85."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / (length - 1))) ** 0.85


def _mel(hz):
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_banks(num_bins: int, fft_size: int, sample_rate: int) -> np.ndarray:
    """(num_bins, fft_size / 2 + 1) triangular filters, equally spaced on the Mel scale between
    20 Hz and Nyquist; the Nyquist bin weighs nothing, as in Kaldi."""
    low, high = _mel(_LOW_HZ), _mel(sample_rate / 2)
    delta = (high - low) / (num_bins + 1)
    left = low + delta * np.arange(num_bins)[:, None]
    center, right = left + delta, left + 2 * delta
    mel = _mel(sample_rate / fft_size * np.arange(fft_size // 2))[None, :]
    banks = np.maximum(0.0, np.minimum((mel - left) / (center - left), (right - mel) / (right - center)))
    return np.pad(banks, ((0, 0), (0, 1)))


@functools.lru_cache(maxsize=4)
def _mel_runs(num_bins: int, fft_size: int, sample_rate: int):
    """:func:`mel_banks` as runs: the FFT bins of every filter in filter order, their weights, and
    where each filter's run starts."""
    banks = mel_banks(num_bins, fft_size, sample_rate)
    filters, columns = np.nonzero(banks)  # row-major: grouped by filter, bins in order
    if np.unique(filters).size != num_bins:
        raise ValueError(f"{num_bins} Mel bins are too many for a {fft_size}-point FFT at {sample_rate} Hz")
    starts = np.searchsorted(filters, np.arange(num_bins))
    return columns, banks[filters, columns], starts


def _utterance_cmvn(features: np.ndarray, norm_means: bool, norm_vars: bool) -> np.ndarray:
    """fairseq's ``UtteranceCMVN``, the same numpy arithmetic."""
    mean = features.mean(axis=0)
    square_sums = (features**2).sum(axis=0)
    if norm_means:
        features = np.subtract(features, mean)
    if norm_vars:
        var = square_sums / features.shape[0] - mean**2
        features = np.divide(features, np.sqrt(np.maximum(var, 1e-10)))
    return features


class NumpyFeatures:
    """(samples,) 16 kHz waveform -> (frames, 80) float32 model input features.

    Args:
        transforms (list): the manifest's ``feature_transforms``.
        folder (Path): the model folder (global CMVN statistics).
        num_mel_bins (int): filterbank bins.
    """

    def __init__(self, transforms: List[Dict], folder: Path, num_mel_bins: int = 80):
        self.num_mel_bins = num_mel_bins
        self.steps = []
        for transform in transforms:
            if transform["name"] == "utterance_cmvn":
                means, variances = transform["norm_means"], transform["norm_vars"]
                self.steps.append(lambda x, m=means, v=variances: _utterance_cmvn(x, m, v))
            elif transform["name"] == "global_cmvn":
                stats = np.load(Path(folder) / transform["file"])
                mean, std = stats["mean"], stats["std"]
                self.steps.append(lambda x, m=mean, s=std: np.divide(np.subtract(x, m), s))
            else:
                raise ValueError(f"{folder}: unknown feature transform {transform['name']!r}")

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        features = numpy_fbank(samples, num_mel_bins=self.num_mel_bins)
        for step in self.steps:
            features = step(features)
        return features.astype(np.float32)

"""Model input features without torch: Kaldi fbank and the model's evaluation transforms
(utterance or global CMVN) in numpy, as the ONNX manifest lists them.

The filterbank follows Kaldi's ``compute-fbank-feats`` with torchaudio's ``compliance.kaldi.fbank``
defaults, which training and the PyTorch recogniser use: 25 ms frames every 10 ms without padding
at the edges, no dither, DC offset removed, pre-emphasis 0.97, Povey window, a 512-point power
spectrum, 80 triangular Mel bins from 20 Hz to Nyquist, natural log floored at float32's epsilon,
16-bit sample scale. tests/test_onnx_export.py checks it within 1e-3 of torchaudio.

It computes in float32, as torchaudio does: float64 is no closer to torchaudio's output (both
differ from it by torchaudio's own float32 rounding) and several times slower, most of it the
page faults of its twice larger arrays. The FFT is scipy's (numpy's is about 5x slower on these
short rows).
"""

import functools
from pathlib import Path
from typing import Dict, List

import numpy as np
import scipy.fft

__all__ = ["NumpyFeatures", "mel_banks", "numpy_fbank"]

_SAMPLE_SCALE = 32768.0  # Kaldi reads 16-bit samples
_FRAME_MS, _SHIFT_MS, _PREEMPHASIS, _LOW_HZ = 25.0, 10.0, 0.97, 20.0


def numpy_fbank(samples: np.ndarray, sample_rate: int = 16000, num_mel_bins: int = 80) -> np.ndarray:
    """(samples,) float waveform in [-1, 1] -> (frames, num_mel_bins) float32 log-Mel filterbanks."""
    length, shift = int(sample_rate * _FRAME_MS / 1000), int(sample_rate * _SHIFT_MS / 1000)
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"fbank needs a 1-D waveform, got shape {samples.shape}")
    if samples.size < length:
        return np.zeros((0, num_mel_bins), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(samples, length)[::shift] * np.float32(_SAMPLE_SCALE)
    frames -= frames.mean(axis=1, keepdims=True)  # (frames, length), a copy of the strided view
    # pre-emphasis; the first sample is taken against itself, as Kaldi does
    frames[:, 1:] -= np.float32(_PREEMPHASIS) * frames[:, :-1]
    frames[:, 0] *= np.float32(1 - _PREEMPHASIS)
    frames *= _window(length)
    fft_size = 1 << (length - 1).bit_length()  # the next power of two
    spectrum = scipy.fft.rfft(frames, n=fft_size, axis=1)
    power = np.square(spectrum.real)
    power += np.square(spectrum.imag)  # (frames, fft_size / 2 + 1)
    energies = power @ _mel_matrix(num_mel_bins, fft_size, sample_rate)
    return np.log(np.maximum(energies, np.finfo(np.float32).eps))


@functools.lru_cache(maxsize=4)
def _window(length: int) -> np.ndarray:
    """Povey's window: a symmetric Hann window to the power 0.85 (float32)."""
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / (length - 1))) ** 0.85
    return window.astype(np.float32)


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
def _mel_matrix(num_bins: int, fft_size: int, sample_rate: int) -> np.ndarray:
    """:func:`mel_banks` as a contiguous (fft_size / 2 + 1, num_bins) float32 matrix; every filter
    must cover an FFT bin."""
    banks = mel_banks(num_bins, fft_size, sample_rate)
    if not banks.any(axis=1).all():
        raise ValueError(f"{num_bins} Mel bins are too many for a {fft_size}-point FFT at {sample_rate} Hz")
    return np.ascontiguousarray(banks.T, dtype=np.float32)


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

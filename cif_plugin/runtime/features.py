"""Model input features without torch: Kaldi fbank from ``kaldi-native-fbank`` and the model's
evaluation transforms (utterance or global CMVN) in numpy, as the ONNX manifest lists them.

The filterbank options are torchaudio's ``compliance.kaldi.fbank`` defaults, which training and the
PyTorch recogniser use (80 bins, 25 ms Povey windows every 10 ms, no dither, 16-bit sample scale);
tests/test_onnx_runtime.py checks both within 1e-3.
"""

from pathlib import Path
from typing import Dict, List

import numpy as np

__all__ = ["NumpyFeatures", "numpy_fbank"]

_SAMPLE_SCALE = 32768.0  # Kaldi reads 16-bit samples


def numpy_fbank(samples: np.ndarray, sample_rate: int = 16000, num_mel_bins: int = 80) -> np.ndarray:
    """(samples,) float waveform in [-1, 1] -> (frames, num_mel_bins) float32 log-Mel filterbanks."""
    import kaldi_native_fbank as knf

    options = knf.FbankOptions()
    options.frame_opts.samp_freq = sample_rate
    options.frame_opts.dither = 0.0
    options.frame_opts.snip_edges = True
    options.frame_opts.window_type = "povey"
    options.frame_opts.frame_shift_ms = 10.0
    options.frame_opts.frame_length_ms = 25.0
    options.frame_opts.preemph_coeff = 0.97
    options.frame_opts.remove_dc_offset = True
    options.frame_opts.round_to_power_of_two = True
    options.mel_opts.num_bins = num_mel_bins
    options.mel_opts.low_freq = 20.0
    options.mel_opts.high_freq = 0.0
    options.use_energy = False
    options.use_log_fbank = True
    options.use_power = True
    fbank = knf.OnlineFbank(options)
    fbank.accept_waveform(sample_rate, (np.asarray(samples, dtype=np.float32) * _SAMPLE_SCALE).tolist())
    fbank.input_finished()
    frames = fbank.num_frames_ready
    if frames == 0:
        return np.zeros((0, num_mel_bins), dtype=np.float32)
    return np.stack([fbank.get_frame(i) for i in range(frames)]).astype(np.float32)


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

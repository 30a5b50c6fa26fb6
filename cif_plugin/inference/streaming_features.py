"""Filterbank features of a stream of samples, equal to those of the whole recording.

Kaldi's fbank with ``snip_edges`` (what :func:`~cif_plugin.tasks.fbank_features.kaldi_fbank` uses)
computes frame k from samples [160 k, 160 k + 400) alone (no dither; DC offset, pre-emphasis and
energy are per window), so computing each frame once its window is complete gives the offline
frames. The model's evaluation transforms then run per frame: global CMVN streams, utterance CMVN
(statistics of the whole utterance) cannot.
"""

import numpy as np
import torch
from fairseq.data.audio.feature_transforms.utterance_cmvn import UtteranceCMVN

from ..tasks.fbank_features import SAMPLE_RATE, WINDOW_SAMPLES, kaldi_fbank

__all__ = ["StreamingFbank", "UTTERANCE_CMVN_CANNOT_STREAM"]

HOP_SAMPLES = 160  # 10 ms at 16 kHz
UTTERANCE_CMVN_CANNOT_STREAM = (
    "the model's data config normalises each utterance with its own statistics (utterance_cmvn), "
    "which a stream does not have: train streaming models with global CMVN (docs/streaming.md)"
)


class StreamingFbank:
    """16 kHz samples in pieces -> the model's input frames, as soon as each window is complete.

    Args:
        transforms: the data config's evaluation transforms (``FeatureExtractor.transforms``), or None.
    """

    def __init__(self, transforms=None):
        if transforms is not None and any(isinstance(t, UtteranceCMVN) for t in transforms.transforms):
            raise ValueError(UTTERANCE_CMVN_CANNOT_STREAM)
        self.transforms = transforms
        self.samples = torch.zeros(1, 0)
        self.samples_seen = 0

    @property
    def seconds(self) -> float:
        """Audio received so far, in seconds."""
        return self.samples_seen / SAMPLE_RATE

    def accept(self, samples, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        """(n,) float samples in [-1, 1] -> (m, 80) float32 frames completed by them (m may be 0)."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"streams take {SAMPLE_RATE} Hz audio, got {sample_rate} Hz: resample it first")
        piece = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(1, -1)
        if not torch.isfinite(piece).all():
            raise ValueError("the audio piece has NaN or infinite samples")
        self.samples = torch.cat([self.samples, piece], dim=1)
        self.samples_seen += piece.size(1)
        if self.samples.size(1) < WINDOW_SAMPLES:
            return torch.zeros(0, 80)
        features = kaldi_fbank(self.samples)
        self.samples = self.samples[:, HOP_SAMPLES * len(features) :]
        if self.transforms is not None:
            features = self.transforms(features)
        return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))

"""Model input features: Kaldi fbank of a 16 kHz waveform, then the transforms the model was trained
with at evaluation time (the data config's ``transforms``: utterance or global CMVN ...)."""

import numpy as np
import torch
from fairseq.data.audio.feature_transforms import CompositeAudioFeatureTransform

from ..tasks.fbank_features import kaldi_fbank

__all__ = ["FeatureExtractor"]


class FeatureExtractor:
    """(1, samples) waveform -> (frames, 80) float32 features.

    Args:
        data_cfg: the task's ``S2TDataConfig`` (its evaluation transforms are applied).
    """

    def __init__(self, data_cfg):
        config = data_cfg.get_feature_transforms("test", False)
        self.transforms = CompositeAudioFeatureTransform.from_config_dict(config)

    def __call__(self, waveform: torch.Tensor) -> np.ndarray:
        features = kaldi_fbank(waveform)
        return self.transforms(features) if self.transforms is not None else features

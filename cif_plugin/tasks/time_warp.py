"""SpecAugment time warping as a fairseq feature transform (``time_warp`` in the data config).

fairseq's ``specaugment`` transform warps with OpenCV, which this toolkit does not install, so
``time_warp_W`` must stay 0 there; this transform does the same warp with numpy. In the data config:

    time_warp:
      W: 5
    transforms:
      _train: [utterance_cmvn, time_warp, specaugment]

The warp (Park et al., 2019, SpecAugment): a frame ``c`` drawn from ``[W, T - W)`` moves to ``c + w``,
``w`` drawn from ``[-W, W]``; the frames before and after it are stretched or squeezed linearly
(first and last frames stay), and values between frames are linearly interpolated. The draws use
numpy's global generator, as fairseq's SpecAugment does (``fairseq-train --seed`` seeds it).
"""

import numpy as np
from fairseq.data.audio.feature_transforms import AudioFeatureTransform, register_audio_feature_transform

__all__ = ["TimeWarp"]


@register_audio_feature_transform("time_warp")
class TimeWarp(AudioFeatureTransform):
    """Args: max_warp (int): W, the largest move of the warp point in frames (0: no warping)."""

    @classmethod
    def from_config_dict(cls, config=None):
        return cls((config or {}).get("W", 0))

    def __init__(self, max_warp: int = 0):
        if max_warp < 0:
            raise ValueError(f"time_warp W must be >= 0, got {max_warp}")
        self.max_warp = int(max_warp)

    def __repr__(self):
        return f"{self.__class__.__name__}(W={self.max_warp})"

    @staticmethod
    def warp(features: np.ndarray, centre: int, shift: int) -> np.ndarray:
        """(T, F) ``features`` with frame ``centre`` moved to ``centre + shift``, which must lie in
        (0, T - 1)."""
        frames = features.shape[0]
        target = centre + shift
        if not 0 < target < frames - 1:
            raise ValueError(f"warp target frame {target} is not inside (0, {frames - 1})")
        output = np.arange(frames, dtype=np.float64)
        # Source position of each output frame: piecewise linear through (0, 0), (target, centre) and
        # (T - 1, T - 1).
        source = np.where(
            output < target,
            output * centre / target,
            centre + (output - target) * (frames - 1 - centre) / (frames - 1 - target),
        )
        below = np.clip(np.floor(source).astype(np.int64), 0, frames - 1)
        above = np.minimum(below + 1, frames - 1)
        fraction = (source - below)[:, None]
        warped = features[below] * (1 - fraction) + features[above] * fraction
        return warped.astype(features.dtype, copy=False)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        frames = features.shape[0]
        if self.max_warp == 0 or frames <= 2 * self.max_warp + 1:
            return features
        centre = np.random.randint(self.max_warp, frames - self.max_warp)
        shift = np.random.randint(-self.max_warp, self.max_warp + 1)
        if not 0 < centre + shift < frames - 1:
            return features
        return self.warp(features, centre, shift)

"""Long recordings: split at pauses found by a voice activity detector (silero-vad, whose ONNX model
ships inside its wheel; ``speech_regions.py``) into segments of at most ``max_seconds``, each with
its offset on the recording's clock. Every speech region is decoded on its own: models trained on
single utterances (AISHELL-1's are 2-10 s) do poorly on a segment holding several with pauses
between them."""

from typing import List, Tuple

import torch

from ..tasks.fbank_features import SAMPLE_RATE
from .speech_regions import SileroVad, cut_regions

__all__ = ["split_long_audio"]

_vad = None


def split_long_audio(waveform: torch.Tensor, max_seconds: float) -> List[Tuple[int, int]]:
    """(start, end) sample ranges of the speech regions of a (1, samples) 16 kHz waveform; a region
    longer than ``max_seconds`` is cut into equal parts. Silence between regions is dropped."""
    global _vad
    if _vad is None:
        _vad = SileroVad()
    regions = _vad.regions(waveform[0].float().cpu().numpy())
    return cut_regions(regions, int(max_seconds * SAMPLE_RATE))

"""Long recordings: split at pauses found by a voice activity detector (silero-vad, whose model ships
inside its wheel) into segments of at most ``max_seconds``, each with its offset on the recording's
clock. Every speech region is decoded on its own: models trained on single utterances (AISHELL-1's
are 2-10 s) do poorly on a segment holding several with pauses between them."""

from typing import List, Tuple

import torch

from ..tasks.fbank_features import SAMPLE_RATE

__all__ = ["split_long_audio"]

_vad_model = None


def _speech_regions(waveform: torch.Tensor) -> List[Tuple[int, int]]:
    global _vad_model
    from silero_vad import get_speech_timestamps, load_silero_vad

    if _vad_model is None:
        _vad_model = load_silero_vad()
    regions = get_speech_timestamps(
        waveform[0], _vad_model, sampling_rate=SAMPLE_RATE
    )  # silero's 30 ms padding
    return [(region["start"], region["end"]) for region in regions]


def split_long_audio(waveform: torch.Tensor, max_seconds: float) -> List[Tuple[int, int]]:
    """(start, end) sample ranges of the speech regions of a (1, samples) 16 kHz waveform; a region
    longer than ``max_seconds`` is cut into equal parts. Silence between regions is dropped."""
    limit = int(max_seconds * SAMPLE_RATE)
    segments: List[Tuple[int, int]] = []
    for start, end in _speech_regions(waveform):
        parts = max(1, -(-(end - start) // limit))
        bounds = [start + (end - start) * k // parts for k in range(parts + 1)]
        segments.extend(zip(bounds[:-1], bounds[1:], strict=True))
    return segments

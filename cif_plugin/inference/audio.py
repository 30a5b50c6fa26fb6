"""Inputs of the recogniser: audio files or in-memory waveforms, as 16 kHz mono float32."""

from pathlib import Path
from typing import Tuple, Union

import numpy as np
import torch
import torchaudio

from ..tasks.fbank_features import SAMPLE_RATE, AudioError, load_waveform
from .audio_inputs import NamedAudio, NamedFile, input_name

__all__ = ["AudioInput", "NamedAudio", "NamedFile", "input_name", "read_input"]

# A path, (samples, sample rate) with samples (N,) or (channels, N), a NamedAudio or a NamedFile.
AudioInput = Union[str, Path, Tuple[Union[np.ndarray, torch.Tensor], int], "NamedAudio", "NamedFile"]


def _in_memory(name: str, samples, sample_rate: int) -> torch.Tensor:
    waveform = torch.as_tensor(np.asarray(samples), dtype=torch.float32)
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.dim() != 2 or waveform.numel() == 0:
        raise AudioError(
            Path(name), f"expected (samples,) or (channels, samples), got {tuple(waveform.shape)}"
        )
    if not torch.isfinite(waveform).all():
        raise AudioError(Path(name), "the samples are not all finite")
    waveform = waveform.mean(dim=0, keepdim=True)
    if sample_rate != SAMPLE_RATE:
        waveform = torchaudio.functional.resample(waveform, int(sample_rate), SAMPLE_RATE)
    return waveform


def read_input(item: AudioInput, index: int) -> torch.Tensor:
    """The (1, samples) float32 16 kHz mono waveform of one input; AudioError when unusable."""
    if isinstance(item, NamedAudio):
        return _in_memory(item.name, item.samples, item.sample_rate)
    if isinstance(item, tuple):
        return _in_memory(input_name(item, index), *item)
    path = Path(item.path if isinstance(item, NamedFile) else item)
    if not path.is_file():
        raise AudioError(path, "no such file")
    return load_waveform(path)

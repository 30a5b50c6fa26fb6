"""Kaldi-compatible 80-bin filterbanks, as the AISHELL-1 preparation and transcription compute them.

Audio of any sample rate and channel count soundfile reads is averaged to mono, resampled to
16 kHz and scaled to the 16-bit range; torchaudio's Kaldi fbank then uses 25 ms windows every
10 ms, no dither, as fairseq's AISHELL-1 preparation does.
"""

from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio

from .data_errors import DataError

__all__ = [
    "SAMPLE_RATE",
    "FRAME_SHIFT_SECONDS",
    "NUM_MEL_BINS",
    "WINDOW_SAMPLES",
    "AudioError",
    "load_waveform",
    "kaldi_fbank",
]

SAMPLE_RATE = 16000
FRAME_SHIFT_SECONDS = 0.01
NUM_MEL_BINS = 80
WINDOW_SAMPLES = 400  # one 25 ms analysis window at 16 kHz: the shortest audio with a frame


class AudioError(DataError):
    """An audio file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


def load_waveform(path: Path) -> torch.Tensor:
    """(1, samples) float32 mono waveform at 16 kHz in [-1, 1]."""
    try:
        audio, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for bad files
        raise AudioError(path, f"unreadable audio: {error}") from error
    if audio.size == 0:
        raise AudioError(path, "empty audio")
    not_finite = int(audio.size - np.isfinite(audio).sum())
    if not_finite:
        raise AudioError(path, f"{not_finite} of {audio.size} samples are NaN or infinite")
    waveform = torch.from_numpy(audio.T).mean(dim=0, keepdim=True)
    if sample_rate != SAMPLE_RATE:
        waveform = torchaudio.functional.resample(waveform, sample_rate, SAMPLE_RATE)
    return waveform


def kaldi_fbank(waveform: torch.Tensor) -> np.ndarray:
    """(frames, 80) float32 log-Mel filterbanks of a (1, samples) 16 kHz waveform."""
    features = torchaudio.compliance.kaldi.fbank(
        waveform * 32768, num_mel_bins=NUM_MEL_BINS, sample_frequency=SAMPLE_RATE
    )
    return features.numpy().astype(np.float32)

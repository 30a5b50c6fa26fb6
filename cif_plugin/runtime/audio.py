"""Audio inputs of the ONNX runtime, read without torch: files (soundfile), (samples, rate) pairs and
named waveforms, as 16 kHz mono float32 in [-1, 1] (resampled as torchaudio resamples)."""

import math
from pathlib import Path

import numpy as np

from ..inference.audio_inputs import NamedAudio, NamedFile, input_name

__all__ = ["SAMPLE_RATE", "RuntimeAudioError", "read_samples", "resample"]

SAMPLE_RATE = 16000


class RuntimeAudioError(ValueError):
    """An input that cannot be transcribed; the message names it and the reason."""

    def __init__(self, name, reason: str):
        super().__init__(f"{name}: {reason}")


def _mono(name: str, samples, sample_rate: int) -> np.ndarray:
    audio = np.asarray(samples, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2 or audio.size == 0:
        raise RuntimeAudioError(name, f"expected (samples,) or (channels, samples), got {audio.shape}")
    if not np.isfinite(audio).all():
        raise RuntimeAudioError(name, "the samples are not all finite")
    mono = audio.mean(axis=0)
    return mono if int(sample_rate) == SAMPLE_RATE else resample(mono, int(sample_rate), SAMPLE_RATE)


def resample(
    samples: np.ndarray, orig_freq: int, new_freq: int, zero_crossings: int = 6, rolloff: float = 0.99
):
    """``torchaudio.functional.resample`` (windowed sinc, Hann window, its defaults) in numpy float32,
    the same arithmetic: each output phase is an FIR filter over the input, applied with a stride."""
    gcd = math.gcd(orig_freq, new_freq)
    orig, new = orig_freq // gcd, new_freq // gcd
    base = min(orig, new) * rolloff
    width = math.ceil(zero_crossings * orig / base)
    index = np.arange(-width, width + orig, dtype=np.float32)[None] / np.float32(orig)
    t = np.arange(0, -new, -1, dtype=np.float32)[:, None] / np.float32(new) + index
    t = np.clip(t * np.float32(base), -zero_crossings, zero_crossings).astype(np.float32)
    window = np.cos(t * np.float32(math.pi / zero_crossings / 2)) ** 2
    t = t * np.float32(math.pi)
    with np.errstate(invalid="ignore", divide="ignore"):
        kernels = np.where(t == 0, np.float32(1.0), np.sin(t) / t).astype(np.float32)
    kernels = kernels * (window * np.float32(base / orig))  # (new, 2 * width + orig)
    padded = np.pad(samples.astype(np.float32), (width, width + orig))
    frames = np.lib.stride_tricks.sliding_window_view(padded, kernels.shape[1])[::orig]
    # copied first: numpy multiplies a strided view without BLAS, about 20 times slower
    resampled = (np.ascontiguousarray(frames) @ kernels.T).reshape(-1)
    return resampled[: math.ceil(new * len(samples) / orig)].astype(np.float32)


def read_samples(item, index: int) -> np.ndarray:
    """(samples,) float32 16 kHz mono waveform of a path, ``NamedFile``, ``NamedAudio`` or
    (samples, rate) pair."""
    name = input_name(item, index)
    if isinstance(item, tuple):
        return _mono(name, *item)
    if isinstance(item, NamedAudio):
        return _mono(name, item.samples, item.sample_rate)
    path = Path(item.path if isinstance(item, NamedFile) else item)
    if not path.is_file():
        raise RuntimeAudioError(path, "no such file")
    import soundfile

    try:
        audio, sample_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for bad files
        raise RuntimeAudioError(path, f"unreadable audio: {error}") from error
    if audio.size == 0:
        raise RuntimeAudioError(path, "empty audio")
    return _mono(str(path), audio.T, sample_rate)

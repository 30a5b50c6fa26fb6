"""Uploaded audio files checked and read, each refusal with its HTTP status (docs/server.md)."""

import io
import struct

import numpy as np
import soundfile

from ..audio import NamedAudio
from .limits import ServerLimits

__all__ = ["UploadRejected", "read_upload"]


class UploadRejected(Exception):
    """An upload the server refuses: ``status`` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _check_wav_complete(name: str, data: bytes) -> None:
    """A RIFF/WAVE file shorter than its header says was cut off in transit: refuse it rather than
    transcribe part of it (libsndfile reads what is there). Streaming writers put 0 or 0xFFFFFFFF in
    the size field: then nothing can be checked."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return
    declared = struct.unpack("<I", data[4:8])[0] + 8
    if declared not in (8, 0xFFFFFFFF + 8) and len(data) < declared:
        raise UploadRejected(400, f"{name}: truncated WAV file ({len(data)} of {declared} bytes)")


def read_upload(name: str, data: bytes, limits: ServerLimits) -> NamedAudio:
    """An uploaded file's bytes -> its samples (frames, channels) at its own rate.

    Raises:
        UploadRejected: 400 empty or truncated, 413 over ``max_upload_bytes`` or
            ``max_upload_seconds``, 415 not audio soundfile can read.
    """
    if not data:
        raise UploadRejected(400, f"{name}: empty upload")
    if len(data) > limits.max_upload_bytes:
        raise UploadRejected(413, f"{name}: {len(data)} bytes, over the limit of {limits.max_upload_bytes}")
    _check_wav_complete(name, data)
    try:
        samples, sample_rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for what it cannot read
        raise UploadRejected(415, f"{name}: not an audio file soundfile can read ({error})") from None
    if samples.size == 0:
        raise UploadRejected(400, f"{name}: the audio has no samples")
    seconds = len(samples) / sample_rate
    if seconds > limits.max_upload_seconds:
        raise UploadRejected(
            413, f"{name}: {seconds:.1f} s of audio, over the limit of {limits.max_upload_seconds:g} s"
        )
    if not np.isfinite(samples).all():
        raise UploadRejected(400, f"{name}: the samples are not all finite")
    return NamedAudio(name, samples.T, sample_rate)

"""Named audio inputs and their report names (plain Python: the torch-free ONNX runtime reads them too)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["NamedAudio", "NamedFile", "input_name"]


@dataclass
class NamedAudio:
    """An in-memory waveform with the name its transcript is reported under."""

    name: str
    samples: Any  # numpy array or torch tensor, (N,) or (channels, N)
    sample_rate: int


@dataclass
class NamedFile:
    """An audio file with the name its transcript is reported under (a ``wav.scp`` id)."""

    name: str
    path: Path


def input_name(item, index: int) -> str:
    """A file's path, a NamedAudio's name, or ``input<index>`` for a bare (samples, rate) pair."""
    if isinstance(item, (NamedAudio, NamedFile)):
        return item.name
    return f"input{index}" if isinstance(item, tuple) else str(item)

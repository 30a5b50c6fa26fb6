"""The inference library: :class:`Recognizer` for every model family, batched and long-audio
transcription, model packages, output formats. The scripts are thin command lines over it."""

from .audio import NamedAudio
from .packages import PackageError, export_package, verify_package
from .recognizer import Recognizer
from .results import TokenTiming, Transcript

__all__ = [
    "NamedAudio",
    "PackageError",
    "Recognizer",
    "TokenTiming",
    "Transcript",
    "export_package",
    "verify_package",
]

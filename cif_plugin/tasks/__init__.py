"""Registered fairseq tasks, the datasets they build and the ``time_warp`` feature transform."""

from . import time_warp  # noqa: F401  (registers the time_warp feature transform)
from .speech_to_text_cif import SpeechToTextCifTask

__all__ = ["SpeechToTextCifTask"]

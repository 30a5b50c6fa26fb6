"""Registered fairseq tasks and the datasets they build."""

from .speech_to_text_cif import SpeechToTextCifTask

__all__ = ["SpeechToTextCifTask"]

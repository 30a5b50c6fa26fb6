"""The inference library: :class:`Recognizer` for every model family, batched and long-audio
transcription, model packages, output formats. The scripts are thin command lines over it.

The names below are imported on first use, so the torch-free modules of this package (``results``,
``output_formats``, ``timestamps``, ``audio_inputs``, ``batching``) load without torch for the ONNX
runtime (``cif_plugin.runtime``).
"""

import importlib

_EXPORTS = {
    "NamedAudio": ".audio",
    "PackageError": ".packages",
    "export_package": ".packages",
    "verify_package": ".packages",
    "Recognizer": ".recognizer",
    "TokenTiming": ".results",
    "Transcript": ".results",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)

"""Transcription with exported ONNX models and onnxruntime alone: no torch, no fairseq (docs/onnx.md).

``scripts/export_onnx.py`` (``cif_plugin.export``) writes the folder; :class:`OnnxRecognizer` reads it.
"""

from .bundle import BundleError, is_onnx_bundle
from .recognizer import OnnxRecognizer

__all__ = ["BundleError", "OnnxRecognizer", "is_onnx_bundle"]

"""Decoding defaults shared by the PyTorch searches, the command lines and the torch-free ONNX runtime."""

__all__ = ["DECODING_TAIL_THRESHOLD", "DEFAULT_HOTWORD_SCORE"]

# The tail threshold the paper decodes with (validation uses the model's own, 0.5 by default).
DECODING_TAIL_THRESHOLD = 0.4

# Per-token bonus of a hotword without its own score (docs/hotwords.md).
DEFAULT_HOTWORD_SCORE = 2.0

"""Generators fairseq-generate uses (through each model's ``build_generator``), and LM scorers.

The names below are imported on first use, so the torch-free modules of this package
(``context_graph``, ``hotwords``) load without torch for the ONNX runtime (``cif_plugin.runtime``).
"""

from ..lazy_exports import lazy_getattr

_EXPORTS = {
    "AsgGenerator": ".asg_generator",
    "CifGenerator": ".cif_generator",
    "CtcGenerator": ".ctc_generator",
    "DecodingOptions": ".decoding_options",
    "add_decoding_arguments": ".decoding_options",
}

__all__ = sorted(_EXPORTS)

__getattr__ = lazy_getattr(__name__, _EXPORTS)

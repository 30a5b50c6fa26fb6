"""Let fairseq checkpoints load under torch >= 2.6, keeping ``torch.load(weights_only=True)``.

fairseq 0.12 loads checkpoints with a plain ``torch.load``, whose default became
``weights_only=True`` in torch 2.6: only tensors, containers and allow-listed classes unpickle.
A checkpoint of a model configured by argparse (every speech model, and ours) stores its options as
an ``argparse.Namespace``, and logged metrics may be numpy scalars. This module allow-lists exactly
those data-only classes; any other global (a function, ``os.system``, ...) is still refused.
"""

import argparse
from typing import List

import numpy as np
import torch

__all__ = ["FAIRSEQ_CHECKPOINT_GLOBALS", "allow_fairseq_checkpoint_globals"]

_NUMPY_SCALAR_TYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "float16", "float32", "float64")

FAIRSEQ_CHECKPOINT_GLOBALS: List[type] = [
    argparse.Namespace,  # cfg.model / args of argparse-configured models
    # numpy scalars (logged metrics, best-checkpoint scores): the scalar builder and dtype classes
    np.core.multiarray.scalar,
    np.dtype,
    *(type(np.dtype(name)) for name in _NUMPY_SCALAR_TYPES),
]


def allow_fairseq_checkpoint_globals() -> None:
    """Add the classes fairseq checkpoints hold to torch's weights-only allow-list (idempotent)."""
    torch.serialization.add_safe_globals(FAIRSEQ_CHECKPOINT_GLOBALS)

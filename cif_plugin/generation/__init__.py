"""Decoders used by fairseq-generate through the task's ``build_generator``."""

from .cif_generator import CifGenerator

__all__ = ["CifGenerator"]

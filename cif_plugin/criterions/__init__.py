"""Registered fairseq criteria; the loss maths lives in pure functions they call."""

from .cif_criterion import CifCriterion, CifCriterionConfig

__all__ = ["CifCriterion", "CifCriterionConfig"]

"""Registered fairseq criteria; the loss maths lives in pure functions they call."""

from .cif_criterion import CifCriterion, CifCriterionConfig
from .ctc_asr_criterion import CtcAsrCriterion, CtcAsrCriterionConfig

__all__ = ["CifCriterion", "CifCriterionConfig", "CtcAsrCriterion", "CtcAsrCriterionConfig"]

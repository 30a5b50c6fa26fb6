"""Registered fairseq criteria; the loss maths lives in pure functions they call."""

from .asg_criterion import AsgCriterion, AsgCriterionConfig
from .cif_criterion import CifCriterion, CifCriterionConfig
from .ctc_asr_criterion import CtcAsrCriterion, CtcAsrCriterionConfig

__all__ = [
    "AsgCriterion",
    "AsgCriterionConfig",
    "CifCriterion",
    "CifCriterionConfig",
    "CtcAsrCriterion",
    "CtcAsrCriterionConfig",
]

"""Decoders used by fairseq-generate through the task's ``build_generator``."""

from .asg_generator import AsgGenerator
from .cif_generator import CifGenerator
from .ctc_generator import CtcGenerator, ctc_prefix_beam_search

__all__ = ["AsgGenerator", "CifGenerator", "CtcGenerator", "ctc_prefix_beam_search"]

"""Generators fairseq-generate uses (through each model's ``build_generator``), and LM scorers."""

from .asg_generator import AsgGenerator
from .cif_generator import CifGenerator
from .ctc_generator import CtcGenerator
from .decoding_options import DecodingOptions, add_decoding_arguments

__all__ = ["AsgGenerator", "CifGenerator", "CtcGenerator", "DecodingOptions", "add_decoding_arguments"]

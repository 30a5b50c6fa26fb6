"""Building blocks in plain PyTorch (no fairseq imports): usable on their own."""

from .cif import Cif, CifOutput
from .cif_weight_predictor import WEIGHT_PREDICTOR_TYPES, CifWeightPredictor
from .integrate_and_fire import IntegrateAndFireOutput, integrate_and_fire, scale_to_target_lengths

__all__ = [
    "Cif",
    "CifOutput",
    "CifWeightPredictor",
    "IntegrateAndFireOutput",
    "WEIGHT_PREDICTOR_TYPES",
    "integrate_and_fire",
    "scale_to_target_lengths",
]

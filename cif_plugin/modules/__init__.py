"""Building blocks in plain PyTorch (no fairseq imports): usable on their own."""

from .cif import DECODING_TAIL_THRESHOLD, Cif, CifOutput
from .cif_weight_predictor import WEIGHT_PREDICTOR_TYPES, CifWeightPredictor
from .conv2d_subsampler import Conv2dSubsampler
from .integrate_and_fire import IntegrateAndFireOutput, integrate_and_fire, scale_to_target_lengths
from .masks import padding_mask_from_lengths
from .pooling_conformer_encoder import PoolingConformerEncoder, max_pool_time, pooled_lengths

__all__ = [
    "DECODING_TAIL_THRESHOLD",
    "Cif",
    "CifOutput",
    "CifWeightPredictor",
    "Conv2dSubsampler",
    "IntegrateAndFireOutput",
    "PoolingConformerEncoder",
    "WEIGHT_PREDICTOR_TYPES",
    "integrate_and_fire",
    "max_pool_time",
    "padding_mask_from_lengths",
    "pooled_lengths",
    "scale_to_target_lengths",
]

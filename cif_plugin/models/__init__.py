"""Registered fairseq models and architectures (translate fairseq configs into modules/)."""

from .s2t_asg_conformer import S2TAsgConformerConfig, S2TAsgConformerModel
from .s2t_cif_transformer import S2TCifTransformerConfig, S2TCifTransformerModel
from .s2t_ctc_conformer import S2TCtcConformerConfig, S2TCtcConformerModel

__all__ = [
    "S2TAsgConformerConfig",
    "S2TAsgConformerModel",
    "S2TCifTransformerConfig",
    "S2TCifTransformerModel",
    "S2TCtcConformerConfig",
    "S2TCtcConformerModel",
]

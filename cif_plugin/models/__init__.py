"""Registered fairseq models and architectures (translate fairseq configs into modules/)."""

from .s2t_cif_transformer import S2TCifTransformerConfig, S2TCifTransformerModel

__all__ = ["S2TCifTransformerConfig", "S2TCifTransformerModel"]

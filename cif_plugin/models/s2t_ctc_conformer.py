"""``s2t_ctc_conformer``: the CIF model's encoder with a CTC output layer only.

The CTC baseline every ASR paper compares against: the same Conv2d front end and pooling conformer
encoder as ``s2t_cif_transformer`` (paper sizes by default), then Linear(encoder dim -> vocabulary).
Trained with the ``ctc_asr`` criterion.
"""

from dataclasses import dataclass, fields
from typing import Dict

from fairseq.models import ARCH_CONFIG_REGISTRY, BaseFairseqModel, register_model, register_model_architecture
from torch import Tensor, nn

from ..modules.pooling_conformer_encoder import PoolingConformerEncoder
from .dataclass_arguments import add_dataclass_arguments
from .s2t_encoder import TINY_ENCODER, S2TEncoderConfig, build_ctc_projection, build_encoder, fill_missing

__all__ = ["S2TCtcConformerConfig", "S2TCtcConformerModel"]


@dataclass
class S2TCtcConformerConfig(S2TEncoderConfig):
    pass


@register_model("s2t_ctc_conformer", dataclass=S2TCtcConformerConfig)
class S2TCtcConformerModel(BaseFairseqModel):
    """Encoder + CTC projection.

    Args:
        encoder (PoolingConformerEncoder): features -> encoder frames.
        ctc_proj (nn.Linear): encoder frames -> CTC logits.
    """

    def __init__(self, encoder: PoolingConformerEncoder, ctc_proj: nn.Linear):
        super().__init__()
        self.encoder, self.ctc_proj = encoder, ctc_proj

    @classmethod
    def add_args(cls, parser):
        add_dataclass_arguments(parser, S2TCtcConformerConfig)

    @classmethod
    def build_model(cls, cfg: S2TCtcConformerConfig, task):
        return cls(build_encoder(cfg, task), build_ctc_projection(cfg, task.target_dictionary))

    def forward(self, src_tokens: Tensor, src_lengths: Tensor, **unused) -> Dict[str, Tensor]:
        """(B, T, F) features -> ``encoder_out`` (B, T', D), ``encoder_padding_mask`` (B, T'),
        ``ctc_logits`` (B, T', V)."""
        encoder_out, padding_mask = self.encoder(src_tokens, src_lengths)
        return {
            "encoder_out": encoder_out,
            "encoder_padding_mask": padding_mask,
            "ctc_logits": self.ctc_proj(encoder_out),
        }

    def max_positions(self):
        return (self.encoder.max_source_positions, None)


_PAPER_ENCODER = {f.name: f.default for f in fields(S2TCtcConformerConfig)}


def s2t_ctc_conformer(args):
    """The paper's encoder (15 conformer blocks of 256, pooling after 5 and 10) with a CTC layer."""
    fill_missing(args, _PAPER_ENCODER)


# register_model(dataclass=...) already registered a no-op architecture of the model's name.
ARCH_CONFIG_REGISTRY["s2t_ctc_conformer"] = s2t_ctc_conformer


@register_model_architecture("s2t_ctc_conformer", "s2t_ctc_conformer_tiny")
def s2t_ctc_conformer_tiny(args):
    """The tiny CIF model's encoder (64-d, 4 blocks) with a CTC layer, for CPU runs."""
    fill_missing(args, TINY_ENCODER)
    s2t_ctc_conformer(args)

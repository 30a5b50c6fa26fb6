"""``s2t_asg_conformer``: the CIF model's encoder with a linear output layer and the learnable label
transition matrix of the ASG criterion.

ASG (wav2letter's Auto Segmentation Criterion) scores label paths with frame emissions plus
transitions[i, j] for label j followed by label i, and has no blank; repeated letters are written
with replabel symbols. The matrix lives in the model (the published criterion kept it in the loss)
so that a checkpoint alone decodes: fairseq-generate runs Viterbi over both. The task copies the
``asg`` criterion's --asg-transitions-init and --max-replabel into ``transitions_init`` and
``max_replabel`` when training.
"""

from dataclasses import dataclass, fields
from typing import Dict

import torch
from fairseq.models import ARCH_CONFIG_REGISTRY, BaseFairseqModel, register_model, register_model_architecture
from torch import Tensor, nn

from ..modules.pooling_conformer_encoder import PoolingConformerEncoder
from .dataclass_arguments import add_dataclass_arguments
from .s2t_encoder import (
    TINY_ENCODER,
    S2TEncoderConfig,
    build_ctc_projection,
    build_encoder,
    fill_missing,
    option,
)

__all__ = ["S2TAsgConformerConfig", "S2TAsgConformerModel"]


@dataclass
class S2TAsgConformerConfig(S2TEncoderConfig):
    transitions_init: float = option(
        0.0, "initial transitions: this value times the identity (set from the asg criterion)"
    )
    max_replabel: int = option(
        2, "replabel symbols the targets were packed with, for decoding (set from the asg criterion)"
    )


@register_model("s2t_asg_conformer", dataclass=S2TAsgConformerConfig)
class S2TAsgConformerModel(BaseFairseqModel):
    """Encoder + Linear(encoder dim -> labels) + a (labels x labels) transition matrix.

    Args:
        encoder (PoolingConformerEncoder): features -> encoder frames.
        output_proj (nn.Linear): encoder frames -> label emissions.
        transitions_init (float): the transition matrix starts as this times the identity.
        max_replabel (int): replabels used by the targets (decoding unpacks them).
    """

    def __init__(
        self,
        encoder: PoolingConformerEncoder,
        output_proj: nn.Linear,
        transitions_init: float,
        max_replabel: int,
    ):
        super().__init__()
        self.encoder, self.output_proj, self.max_replabel = encoder, output_proj, max_replabel
        labels = output_proj.out_features
        self.transitions = nn.Parameter(torch.eye(labels) * transitions_init)

    @classmethod
    def add_args(cls, parser):
        add_dataclass_arguments(parser, S2TAsgConformerConfig)

    @classmethod
    def build_model(cls, cfg: S2TAsgConformerConfig, task):
        encoder = build_encoder(cfg, task)
        return cls(
            encoder, build_ctc_projection(cfg, task.target_dictionary), cfg.transitions_init, cfg.max_replabel
        )

    def forward(self, src_tokens: Tensor, src_lengths: Tensor, **unused) -> Dict[str, Tensor]:
        """(B, T, F) features -> ``encoder_out`` (B, T', D), ``encoder_padding_mask`` (B, T'),
        ``emissions`` (B, T', V)."""
        encoder_out, padding_mask = self.encoder(src_tokens, src_lengths)
        return {
            "encoder_out": encoder_out,
            "encoder_padding_mask": padding_mask,
            "emissions": self.output_proj(encoder_out),
        }

    def max_positions(self):
        return (self.encoder.max_source_positions, None)


_PAPER_CONFIG = {f.name: f.default for f in fields(S2TAsgConformerConfig)}


def s2t_asg_conformer(args):
    """The paper's encoder (15 conformer blocks of 256, pooling after 5 and 10) with an ASG output."""
    fill_missing(args, _PAPER_CONFIG)


# register_model(dataclass=...) already registered a no-op architecture of the model's name.
ARCH_CONFIG_REGISTRY["s2t_asg_conformer"] = s2t_asg_conformer


@register_model_architecture("s2t_asg_conformer", "s2t_asg_conformer_tiny")
def s2t_asg_conformer_tiny(args):
    """The tiny encoder (64-d, 4 blocks) with an ASG output, for CPU runs."""
    fill_missing(args, TINY_ENCODER)
    s2t_asg_conformer(args)

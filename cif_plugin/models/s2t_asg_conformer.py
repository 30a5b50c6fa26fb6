"""``s2t_asg_conformer``: the CIF model's encoder with a linear output layer and the learnable label
transition matrix of the ASG criterion.

ASG (wav2letter's Auto Segmentation Criterion) scores label paths with frame emissions plus
transitions[i, j] for label j followed by label i, and has no blank; repeated letters are written
with replabel symbols. The matrix lives in the model (the published criterion kept it in the loss)
so that a checkpoint alone decodes: fairseq-generate runs Viterbi over both. The model declares
--asg-transitions-init and --max-replabel; the ``asg`` criterion packs its targets with the
model's ``max_replabel``.
"""

from dataclasses import dataclass
from typing import Dict, Sequence

import torch
from fairseq.models import register_model, register_model_architecture
from torch import Tensor, nn

from ..generation import AsgGenerator, DecodingOptions
from ..modules.pooling_conformer_encoder import PoolingConformerEncoder
from ..ops.asg import replabel_ids
from ..ops.hotwords import NO_HOTWORDS_WITH_VITERBI
from .asr_model import AsrModel, fill_missing
from .s2t_encoder import TINY_ENCODER, S2TEncoderConfig, build_ctc_projection, build_encoder, option

__all__ = ["S2TAsgConformerConfig", "S2TAsgConformerModel"]


@dataclass
class S2TAsgConformerConfig(S2TEncoderConfig):
    asg_transitions_init: float = option(0.0, "initial transitions: this value times the identity")
    max_replabel: int = option(
        2, "longest repetition written as one replabel symbol ('1'..'N' must be in dict.txt; 0: none)"
    )


@register_model("s2t_asg_conformer")
class S2TAsgConformerModel(AsrModel):
    """Encoder + Linear(encoder dim -> labels) + a (labels x labels) transition matrix.

    Args:
        encoder (PoolingConformerEncoder): features -> encoder frames.
        output_proj (nn.Linear): encoder frames -> label emissions.
        transitions_init (float): the transition matrix starts as this times the identity.
        replabels (Sequence[int]): dictionary indices of the replabel symbols "1".."N" the targets
            are packed with (training) and unpacked from (decoding).
    """

    def __init__(
        self,
        encoder: PoolingConformerEncoder,
        output_proj: nn.Linear,
        transitions_init: float,
        replabels: Sequence[int],
    ):
        super().__init__()
        self.encoder, self.output_proj, self.replabels = encoder, output_proj, list(replabels)
        labels = output_proj.out_features
        self.transitions = nn.Parameter(torch.eye(labels) * transitions_init)

    @property
    def max_replabel(self) -> int:
        return len(self.replabels)

    config_type = S2TAsgConformerConfig

    @classmethod
    def build_from_config(cls, cfg: S2TAsgConformerConfig, task):
        encoder = build_encoder(cfg, task)
        dictionary = task.target_dictionary
        replabels = replabel_ids(dictionary, cfg.max_replabel) if cfg.max_replabel > 0 else []
        return cls(encoder, build_ctc_projection(cfg, dictionary), cfg.asg_transitions_init, replabels)

    def build_generator(self, dictionary, options: DecodingOptions) -> AsgGenerator:
        """Viterbi decoding (exact: the beam is not used)."""
        if options.hotwords is not None:
            raise ValueError(NO_HOTWORDS_WITH_VITERBI)
        return AsgGenerator(self, dictionary, options.beam, options.nbest)

    def forward(self, src_tokens: Tensor, src_lengths: Tensor, **unused) -> Dict[str, Tensor]:
        """(B, T, F) features -> the ``forward_encoder`` entries and ``emissions`` (B, T', V)."""
        output = self.forward_encoder(src_tokens, src_lengths)
        output["emissions"] = self.output_proj(output["encoder_out"])
        return output


@register_model_architecture("s2t_asg_conformer", "s2t_asg_conformer")
def s2t_asg_conformer(args):
    """The paper's encoder (15 conformer blocks of 256, pooling after 5 and 10) with an ASG output."""
    fill_missing(args, S2TAsgConformerModel.paper_defaults())


@register_model_architecture("s2t_asg_conformer", "s2t_asg_conformer_tiny")
def s2t_asg_conformer_tiny(args):
    """The tiny encoder (64-d, 4 blocks) with an ASG output, for CPU runs."""
    fill_missing(args, TINY_ENCODER)
    s2t_asg_conformer(args)

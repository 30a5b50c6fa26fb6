"""``s2t_ctc_conformer``: the CIF model's encoder with a CTC output layer.

The CTC baseline every ASR paper compares against: the same Conv2d front end and pooling conformer
encoder as ``s2t_cif_transformer`` (paper sizes by default), then Linear(encoder dim -> vocabulary).
Trained with the ``ctc_asr`` criterion.

Knowledge transfer from a PLM (Deng et al., arXiv 2203.03582): with ``knowledge_transfer_branch``
(set from the criterion's ``--apply-knowledge-transfer``) a CIF over the encoder output
and Linear(CIF dim -> PLM dim) give one vector per target token, which the criterion pulls towards
the PLM's features of those tokens. The branch runs only when the caller passes ``target_lengths``
(the criterion does); decoding never does, so inference is pure CTC.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional

from fairseq.models import register_model, register_model_architecture
from torch import Tensor, nn

from ..generation import CtcGenerator, DecodingOptions
from ..generation.language_models import load_prefix_scorer
from ..modules import Cif
from ..modules.pooling_conformer_encoder import PoolingConformerEncoder
from ..ops.hotwords import build_context_graph
from .asr_model import AsrModel, fill_missing
from .s2t_encoder import (
    TINY_CIF,
    TINY_ENCODER,
    S2TCifConfig,
    build_cif,
    build_ctc_projection,
    build_encoder,
    option,
)

__all__ = ["S2TCtcConformerConfig", "S2TCtcConformerModel"]


@dataclass
class S2TCtcConformerConfig(S2TCifConfig):
    knowledge_transfer_branch: bool = option(
        False,
        "a training-only CIF branch projected to the PLM dimension (set from the ctc_asr "
        "criterion's --apply-knowledge-transfer)",
    )


@register_model("s2t_ctc_conformer")
class S2TCtcConformerModel(AsrModel):
    """Encoder + CTC projection, and optionally the knowledge-transfer branch.

    Args:
        encoder (PoolingConformerEncoder): features -> encoder frames.
        ctc_proj (nn.Linear): encoder frames -> CTC logits.
        cif (Cif, optional): encoder frames -> one vector per token (knowledge transfer only).
        plm_proj (nn.Linear, optional): CIF vectors -> PLM feature space (knowledge transfer only).
    """

    def __init__(
        self,
        encoder: PoolingConformerEncoder,
        ctc_proj: nn.Linear,
        cif: Optional[Cif] = None,
        plm_proj: Optional[nn.Linear] = None,
    ):
        super().__init__()
        if (cif is None) != (plm_proj is None):
            raise ValueError("the knowledge-transfer branch needs both its CIF and its projection")
        self.encoder, self.ctc_proj = encoder, ctc_proj
        self.cif, self.plm_proj = cif, plm_proj

    config_type = S2TCtcConformerConfig

    @classmethod
    def options_from_criterion(cls, criterion_args) -> Dict[str, Any]:
        """The knowledge-transfer branch when the ctc_asr criterion trains it."""
        return (
            {"knowledge_transfer_branch": True}
            if getattr(criterion_args, "apply_knowledge_transfer", False)
            else {}
        )

    @classmethod
    def build_from_config(cls, cfg: S2TCtcConformerConfig, task):
        encoder = build_encoder(cfg, task)
        ctc_proj = build_ctc_projection(cfg, task.target_dictionary)
        if not cfg.knowledge_transfer_branch:
            return cls(encoder, ctc_proj)
        return cls(
            encoder, ctc_proj, build_cif(cfg), nn.Linear(cfg.cif_embedding_dim, cfg.bert_distill_feat_dim)
        )

    def build_generator(self, dictionary, options: DecodingOptions) -> CtcGenerator:
        """Greedy for beam 1, prefix beam search otherwise, with shallow fusion of the fairseq LM of
        ``options.lm_path`` or the n-gram LM of ``options.ngram_lm_path``; hotword biasing with
        ``options.hotwords``."""
        return CtcGenerator(
            self,
            dictionary,
            options.beam,
            options.nbest,
            load_prefix_scorer(options, dictionary),
            options.lm_weight,
            options.ctc_token_bonus,
            build_context_graph(options.hotwords, dictionary, options.hotword_score),
        )

    def ctc_head(self, src_tokens: Tensor, src_lengths: Tensor):
        output = self(src_tokens, src_lengths)
        return output["ctc_logits"], output["encoder_lengths"]

    def forward(
        self, src_tokens: Tensor, src_lengths: Tensor, target_lengths: Optional[Tensor] = None, **unused
    ) -> Dict[str, Tensor]:
        """(B, T, F) features -> the ``forward_encoder`` entries and ``ctc_logits`` (B, T', V).

        With the knowledge-transfer branch and ``target_lengths`` (B,) (labels per utterance, the
        CIF's scaling target in training) also ``plm_space_features`` (B, N, P), zero at padding,
        ``cif_padding_mask`` (B, N) and ``quantity`` (B,).
        """
        output = self.forward_encoder(src_tokens, src_lengths)
        output["ctc_logits"] = self.ctc_proj(output["encoder_out"])
        if self.cif is not None and target_lengths is not None:
            cif = self.cif(
                output["encoder_out"],
                output["encoder_lengths"],
                target_lengths,
                chunk_size=output["encoder_chunk_size"],
            )
            valid = (~cif.cif_padding_mask).unsqueeze(-1).to(cif.cif_out.dtype)
            output["plm_space_features"] = self.plm_proj(cif.cif_out * valid)
            output["cif_padding_mask"], output["quantity"] = cif.cif_padding_mask, cif.quantity
        return output


@register_model_architecture("s2t_ctc_conformer", "s2t_ctc_conformer")
def s2t_ctc_conformer(args):
    """The paper's encoder (15 conformer blocks of 256, pooling after 5 and 10) with a CTC layer."""
    fill_missing(args, S2TCtcConformerModel.paper_defaults())


@register_model_architecture("s2t_ctc_conformer", "s2t_ctc_conformer_tiny")
def s2t_ctc_conformer_tiny(args):
    """The tiny CIF model's encoder (64-d, 4 blocks) with a CTC layer, for CPU runs."""
    fill_missing(args, {**TINY_ENCODER, **TINY_CIF})
    s2t_ctc_conformer(args)

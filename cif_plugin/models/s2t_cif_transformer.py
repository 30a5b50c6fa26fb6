"""The CIF speech recogniser ``s2t_cif_transformer`` (Han et al., INTERSPEECH 2023; docs/model.md).

Pooling conformer encoder -> CTC head and CIF -> autoregressive (or NAR) CIF decoder. The
dataclass defaults are the paper's AISHELL-1 configuration: with the 4,234-symbol AISHELL-1
dictionary the model has 47,208,587 parameters, as published.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional

from fairseq.dataclass import ChoiceEnum
from fairseq.models import register_model, register_model_architecture
from torch import Tensor, nn

from ..generation import CifGenerator, DecodingOptions
from ..generation.language_models import load_fairseq_lm
from ..modules import Cif
from ..modules.pooling_conformer_encoder import PoolingConformerEncoder
from ..ops.hotwords import build_context_graph
from .asr_model import AsrModel, fill_missing
from .cif_decoder import CifArDecoder, CifNarDecoder, DecoderLayerOptions
from .s2t_encoder import (
    TINY_CIF,
    TINY_ENCODER,
    S2TCifConfig,
    build_cif,
    build_ctc_projection,
    build_encoder,
    option,
)

__all__ = ["S2TCifTransformerConfig", "S2TCifTransformerModel"]


@dataclass
class S2TCifTransformerConfig(S2TCifConfig):
    # Decoder.
    decoder_embed_dim: int = option(256, "decoder dimension")
    decoder_ffn_embed_dim: int = option(2048, "decoder feed-forward dimension")
    decoder_layers: int = option(2, "decoder layers")
    decoder_attention_heads: int = option(4, "decoder attention heads")
    decoder_dropout: float = option(0.2, "dropout inside the decoder layers")
    decoder_attention_dropout: float = option(0.2, "attention dropout in the decoder")
    decoder_activation_dropout: float = option(0.2, "activation dropout in the decoder")
    decoder_normalize_before: bool = option(True, "pre-norm decoder layers")
    no_decoder_final_norm: bool = option(False, "no LayerNorm after the pre-norm decoder stack")
    activation_fn: ChoiceEnum(["relu", "gelu", "swish", "tanh"]) = option("relu", "decoder activation")
    decoder_learned_pos: bool = option(False, "learned instead of sinusoidal decoder positions")
    no_token_positional_embeddings: bool = option(False, "no positions in the decoder")
    share_decoder_input_output_embed: bool = option(
        False, "tie the decoder's output projection to its embeddings"
    )
    do_decoder_nar: bool = option(False, "non-autoregressive decoder over the CIF vectors")
    decoder_nar_pad_type: ChoiceEnum(["full", "triangle"]) = option(
        "full", "NAR decoder self-attention: full or causal"
    )
    add_pos_to_cif: bool = option(False, "NAR decoder: add positions to the CIF vectors")
    # Distillation heads: only those of the distillation losses that are on exist, so every
    # parameter gets a gradient (plain DDP works). options_from_criterion sets the two distill_*
    # flags from the cif criterion's --apply-cif-contrastive-dis-cos-loss and --apply-dec-state-dis-loss.
    apply_bert_distill: bool = option(
        False, "distil PLM features into the model (ACD/LRD options of the cif criterion)"
    )
    distill_cif_outputs: bool = option(
        False, "a projection of the CIF vectors to the PLM dimension, for ACD (set from the criterion)"
    )
    distill_decoder_states: bool = option(
        False, "a projection of the decoder states to the PLM dimension, for LRD (set from the criterion)"
    )
    fetch_decoder_states_from: ChoiceEnum(["tfm_outputs", "pre_final_output_proj"]) = option(
        "tfm_outputs",
        "decoder states for distillation: after the final norm, or the vocabulary projection's input",
    )


@register_model("s2t_cif_transformer")
class S2TCifTransformerModel(AsrModel):
    """Encoder + CTC head + CIF + decoder; one method per head.

    Args:
        encoder (PoolingConformerEncoder): features -> encoder frames.
        ctc_proj (nn.Linear): encoder frames -> CTC logits.
        cif (Cif): encoder frames -> one vector per token.
        decoder (CifArDecoder | CifNarDecoder): CIF vectors -> token logits.
    """

    def __init__(
        self,
        encoder: PoolingConformerEncoder,
        ctc_proj: nn.Linear,
        cif: Cif,
        decoder: nn.Module,
        cif_distill_proj: Optional[nn.Linear] = None,
        decoder_distill_proj: Optional[nn.Linear] = None,
    ):
        super().__init__()
        self.encoder, self.ctc_proj, self.cif, self.decoder = encoder, ctc_proj, cif, decoder
        self.cif_distill_proj, self.decoder_distill_proj = cif_distill_proj, decoder_distill_proj

    config_type = S2TCifTransformerConfig

    @classmethod
    def options_from_criterion(cls, criterion_args) -> Dict[str, Any]:
        """The distillation heads of the cif criterion's distillation losses that are on."""
        values = {}
        if getattr(criterion_args, "apply_cif_contrastive_dis_cos_loss", False):
            values["distill_cif_outputs"] = True
        if getattr(criterion_args, "apply_dec_state_dis_loss", False):
            values["distill_decoder_states"] = True
        return values

    @classmethod
    def build_from_config(cls, cfg: S2TCifTransformerConfig, task):
        dictionary = task.target_dictionary
        encoder = build_encoder(cfg, task)
        ctc_proj = build_ctc_projection(cfg, dictionary)
        cif = build_cif(cfg)
        decoder = cls.build_decoder(cfg, dictionary, task.args.max_target_positions)
        distill = cfg.apply_bert_distill
        cif_distill_proj = (
            nn.Linear(cfg.cif_embedding_dim, cfg.bert_distill_feat_dim)
            if distill and cfg.distill_cif_outputs
            else None
        )
        decoder_distill_proj = (
            nn.Linear(cfg.decoder_embed_dim, cfg.bert_distill_feat_dim)
            if distill and cfg.distill_decoder_states
            else None
        )
        return cls(encoder, ctc_proj, cif, decoder, cif_distill_proj, decoder_distill_proj)

    @staticmethod
    def build_decoder(cfg: S2TCifTransformerConfig, dictionary, max_target_positions: int) -> nn.Module:
        """The AR decoder, or the NAR one with ``do_decoder_nar``; positions sized by the task."""
        layers = DecoderLayerOptions(
            embed_dim=cfg.decoder_embed_dim,
            ffn_dim=cfg.decoder_ffn_embed_dim,
            num_layers=cfg.decoder_layers,
            num_heads=cfg.decoder_attention_heads,
            dropout=cfg.decoder_dropout,
            attention_dropout=cfg.decoder_attention_dropout,
            activation_dropout=cfg.decoder_activation_dropout,
            activation_fn=str(cfg.activation_fn),
            normalize_before=cfg.decoder_normalize_before,
            final_norm=not cfg.no_decoder_final_norm,
        )
        if cfg.do_decoder_nar:
            return CifNarDecoder(
                dictionary,
                cfg.cif_embedding_dim,
                layers,
                input_dropout=cfg.dropout,
                attention_type=str(cfg.decoder_nar_pad_type),
                add_positions=cfg.add_pos_to_cif,
                max_target_positions=max_target_positions,
                states_from=str(cfg.fetch_decoder_states_from),
            )
        return CifArDecoder(
            dictionary,
            cfg.cif_embedding_dim,
            layers,
            input_dropout=cfg.dropout,
            max_target_positions=max_target_positions,
            learned_positions=cfg.decoder_learned_pos,
            use_positions=not cfg.no_token_positional_embeddings,
            share_input_output_embed=cfg.share_decoder_input_output_embed,
            states_from=str(cfg.fetch_decoder_states_from),
        )

    def build_generator(self, dictionary, options: DecodingOptions) -> CifGenerator:
        """Greedy for beam 1, beam search otherwise, one parallel pass for a NAR decoder; shallow
        fusion with the fairseq LM of ``options.lm_path``; hotword biasing with ``options.hotwords``."""
        if options.ngram_lm_path:
            raise ValueError(f"--ngram-lm-path {options.ngram_lm_path}: n-gram LMs fuse with CTC models only")
        lm = load_fairseq_lm(options.lm_path, dictionary, options.data_dir) if options.lm_path else None
        context_graph = build_context_graph(options.hotwords, dictionary, options.hotword_score)
        return CifGenerator(
            self,
            dictionary,
            options.beam,
            options.nbest,
            options.tail_threshold,
            lm,
            options.lm_weight,
            context_graph,
        )

    def forward_ctc(self, encoder_out: Tensor) -> Tensor:
        """(B, T', D) -> (B, T', V) CTC logits."""
        return self.ctc_proj(encoder_out)

    def ctc_head(self, src_tokens: Tensor, src_lengths: Tensor):
        encoder = self.forward_encoder(src_tokens, src_lengths)
        return self.forward_ctc(encoder["encoder_out"]), encoder["encoder_lengths"]

    def forward_cif(
        self,
        encoder: Dict[str, Tensor],
        target_lengths: Optional[Tensor] = None,
        tail_threshold: Optional[float] = None,
    ) -> Dict[str, Tensor]:
        """Encoder output -> CIF vectors: ``cif_out`` (B, N, C), ``cif_padding_mask`` (B, N),
        ``fire_counts`` (B,), ``fire_frames`` (B, N), ``alpha`` (B, T'), ``quantity`` (B,)."""
        return self.cif(
            encoder["encoder_out"],
            encoder["encoder_lengths"],
            target_lengths,
            tail_threshold,
            encoder.get("encoder_chunk_size", 0),
        )._asdict()

    def forward(
        self,
        src_tokens: Tensor,
        src_lengths: Tensor,
        prev_output_tokens: Tensor,
        target_lengths: Optional[Tensor] = None,
        **unused,
    ) -> Dict[str, Any]:
        """Teacher-forced forward pass.

        Args:
            src_tokens (Tensor): (B, T, F) features.
            src_lengths (Tensor): (B,) frames.
            prev_output_tokens (Tensor): (B, S) ``</s>`` + target without its last token.
            target_lengths (Tensor, optional): (B,) target lengths incl. ``</s>`` (CIF scaling).

        Returns:
            dict: the encoder, CTC and CIF entries of the ``forward_*`` methods plus
            ``decoder_logits`` (B, M, V) and ``decoder_states`` (B, M, D); with distillation heads
            also ``cif_distill_features`` (B, N, P) and ``decoder_distill_states`` (B, M, P).
        """
        encoder = self.forward_encoder(src_tokens, src_lengths)
        cif = self.forward_cif(encoder, target_lengths)
        decoder_logits, extra = self.decoder(prev_output_tokens, encoder_out=cif)
        output = {
            **encoder,
            **cif,
            "ctc_logits": self.forward_ctc(encoder["encoder_out"]),
            "decoder_logits": decoder_logits,
            "decoder_states": extra["decoder_states"],
        }
        if self.cif_distill_proj is not None:
            valid = (~cif["cif_padding_mask"]).unsqueeze(-1).to(cif["cif_out"].dtype)
            output["cif_distill_features"] = self.cif_distill_proj(cif["cif_out"] * valid)
        if self.decoder_distill_proj is not None:
            output["decoder_distill_states"] = self.decoder_distill_proj(extra["decoder_states"])
        return output

    def max_positions(self):
        return (self.encoder.max_source_positions, self.decoder.max_positions())


_TINY_CONFIG = dict(
    **TINY_ENCODER,
    **TINY_CIF,
    decoder_embed_dim=64,
    decoder_ffn_embed_dim=128,
    decoder_layers=1,
    decoder_attention_heads=2,
    decoder_dropout=0.1,
    decoder_attention_dropout=0.1,
    decoder_activation_dropout=0.1,
)


@register_model_architecture("s2t_cif_transformer", "s2t_cif_transformer")
def s2t_cif_transformer(args):
    """The paper's AISHELL-1 model: 15 conformer blocks of 256, pooling after 5 and 10, 2 decoder
    layers; 47,208,587 parameters with the AISHELL-1 dictionary."""
    fill_missing(args, S2TCifTransformerModel.paper_defaults())


@register_model_architecture("s2t_cif_transformer", "s2t_cif_transformer_tiny")
def s2t_cif_transformer_tiny(args):
    """A CPU-sized model (64-d, 4 conformer blocks, 1 decoder layer) for tests and the demo."""
    fill_missing(args, _TINY_CONFIG)
    s2t_cif_transformer(args)


_STREAMING = dict(encoder_chunk_size=8, causal_conv=True, dynamic_chunk_training=True)


@register_model_architecture("s2t_cif_transformer", "s2t_cif_transformer_streaming")
def s2t_cif_transformer_streaming(args):
    """The paper's model made chunk-causal (docs/streaming.md): causal depthwise convolutions, dynamic
    chunk training, 640 ms chunks (8 output frames) at evaluation."""
    fill_missing(args, _STREAMING)
    s2t_cif_transformer(args)


@register_model_architecture("s2t_cif_transformer", "s2t_cif_transformer_streaming_tiny")
def s2t_cif_transformer_streaming_tiny(args):
    """The tiny model made chunk-causal, as ``s2t_cif_transformer_streaming``."""
    fill_missing(args, _STREAMING)
    s2t_cif_transformer_tiny(args)

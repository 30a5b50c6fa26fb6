"""What the model families share: the encoder's and the CIF's options, their builders and the CTC
projection (the paper's configuration as defaults: docs/options.md lists them)."""

from dataclasses import dataclass, field
from typing import Any, List

from fairseq.dataclass import ChoiceEnum, FairseqDataclass
from torch import nn

from ..modules import Cif, CifWeightPredictor, Conv2dSubsampler, PoolingConformerEncoder
from .conformer_block import MaskedConformerBlock
from .rel_positional_encoding import ThreadSafeRelPositionalEncoding

__all__ = [
    "S2TEncoderConfig",
    "S2TCifConfig",
    "TINY_ENCODER",
    "TINY_CIF",
    "build_encoder",
    "build_cif",
    "build_ctc_projection",
    "option",
]


def option(default: Any, help_text: str):
    """A dataclass field with help text."""
    return field(default=default, metadata={"help": help_text})


@dataclass
class S2TEncoderConfig(FairseqDataclass):
    # Input: set by the task from the data config.
    input_feat_per_channel: int = option(80, "feature bins per frame (set by the task from the data config)")
    input_channels: int = option(1, "input channels (set by the task from the data config; must be 1)")
    # Front end.
    frontend_type: ChoiceEnum(["conv2d"]) = option("conv2d", "front end: ESPnet-style Conv2d subsampler")
    conv2d_output_channels: str = option("128", "comma-separated output channels of the Conv2d layers")
    conv_kernel_sizes: str = option("3", "comma-separated kernel sizes of the Conv2d layers (stride 2)")
    # Encoder.
    encoder_embed_dim: int = option(256, "encoder dimension")
    encoder_ffn_embed_dim: int = option(2048, "conformer feed-forward dimension")
    encoder_layers: int = option(15, "number of conformer blocks")
    encoder_attention_heads: int = option(4, "encoder attention heads")
    dropout: float = option(0.1, "dropout in the encoder and on the decoder input")
    attention_dropout: float = option(
        0.1, "accepted for the paper's command line: conformer blocks use --dropout, the decoder its own"
    )
    activation_dropout: float = option(
        0.1, "accepted for the paper's command line: conformer blocks use --dropout, the decoder its own"
    )
    apply_conformer_encoder: bool = option(True, "conformer blocks (the only encoder implemented)")
    conformer_attn_type: ChoiceEnum(["espnet"]) = option("espnet", "conformer attention implementation")
    conformer_pos_enc_type: ChoiceEnum(["rel_pos"]) = option("rel_pos", "conformer positional encoding")
    conformer_depthwise_conv_kernel_size: int = option(15, "odd kernel size of the conformer depthwise conv")
    layer_downsampling: bool = option(True, "max-pool over time after the blocks in --pooling-layer-ids")
    pooling_layer_ids: str = option("5,10", "comma-separated 1-based blocks followed by pooling")
    no_scale_embedding: bool = option(False, "do not scale the subsampler output by sqrt(encoder dim)")
    # Streaming (docs/streaming.md).
    encoder_chunk_size: int = option(
        0, "chunk-causal encoder: output frames per chunk (8 = 640 ms at 80 ms frames); 0: full context"
    )
    encoder_left_chunks: int = option(-1, "earlier chunks an encoder frame sees; -1: all of them")
    dynamic_chunk_training: bool = option(
        False, "draw the chunk size per training batch (full context half of the time, else 1-16 frames)"
    )
    causal_conv: bool = option(
        False, "conformer depthwise convolutions see only the current and earlier frames (needed to stream)"
    )


@dataclass
class S2TCifConfig(S2TEncoderConfig):
    # CIF.
    cif_embedding_dim: int = option(256, "CIF output dimension (a bias-free Linear if != encoder dim)")
    produce_weight_type: ChoiceEnum(["conv", "dense", "linear"]) = option("conv", "CIF weight predictor")
    cif_threshold: float = option(0.99, "CIF firing threshold beta, in (0, 1]")
    conv_cif_width: int = option(3, "kernel width of the conv weight predictor")
    conv_cif_output_channels_num: int = option(256, "channels of the conv weight predictor")
    conv_cif_dropout: float = option(0.2, "dropout after the weight predictor's conv")
    dense_cif_units_num: int = option(256, "hidden units of the dense weight predictor")
    apply_scaling: bool = option(True, "in training, scale CIF weights to the target length")
    apply_tail_handling: bool = option(
        True, "in evaluation, fire the last partial token above the tail threshold"
    )
    tail_handling_firing_threshold: float = option(
        0.5, "tail threshold in validation (decoding sets its own, 0.4 as published)"
    )
    # PLM features distilled into the model.
    bert_distill_feat_dim: int = option(768, "dimension of the PLM features (768 for bert-base-chinese)")


# The CPU-sized encoder of the *_tiny architectures.
TINY_ENCODER = dict(
    conv2d_output_channels="16",
    encoder_embed_dim=64,
    encoder_ffn_embed_dim=128,
    encoder_layers=4,
    encoder_attention_heads=2,
    conformer_depthwise_conv_kernel_size=7,
    pooling_layer_ids="2,3",
)

# The CIF of the *_tiny architectures.
TINY_CIF = dict(
    cif_embedding_dim=64, conv_cif_output_channels_num=64, conv_cif_dropout=0.1, dense_cif_units_num=64
)


def _int_list(text: str, name: str) -> List[int]:
    try:
        return [int(item) for item in str(text).split(",") if item.strip()]
    except ValueError:
        raise ValueError(
            f"--{name.replace('_', '-')} must be comma-separated integers, got {text!r}"
        ) from None


def build_encoder(cfg: S2TEncoderConfig, task) -> PoolingConformerEncoder:
    """The pooling conformer encoder of ``cfg`` with fairseq's rel-pos encoding in its blocks."""
    if not cfg.apply_conformer_encoder:
        raise ValueError("only the conformer encoder is implemented: drop --no-apply-conformer-encoder")
    if cfg.input_channels != 1:
        raise ValueError(
            f"the Conv2d front end takes 1 input channel, the data config says {cfg.input_channels}"
        )
    subsampler = Conv2dSubsampler(
        cfg.input_feat_per_channel,
        _int_list(cfg.conv2d_output_channels, "conv2d_output_channels"),
        _int_list(cfg.conv_kernel_sizes, "conv_kernel_sizes"),
        cfg.encoder_embed_dim,
    )
    max_positions = task.args.max_source_positions
    return PoolingConformerEncoder(
        subsampler,
        make_block=lambda: MaskedConformerBlock(
            cfg.encoder_embed_dim,
            cfg.encoder_ffn_embed_dim,
            cfg.encoder_attention_heads,
            cfg.dropout,
            cfg.conformer_depthwise_conv_kernel_size,
            cfg.causal_conv,
        ),
        num_layers=cfg.encoder_layers,
        pooling_layer_ids=_int_list(cfg.pooling_layer_ids, "pooling_layer_ids")
        if cfg.layer_downsampling
        else [],
        dropout=cfg.dropout,
        pos_encoding=ThreadSafeRelPositionalEncoding(max_positions, cfg.encoder_embed_dim),
        max_source_positions=max_positions,
        scale_embedding=not cfg.no_scale_embedding,
        chunk_size=cfg.encoder_chunk_size,
        left_chunks=cfg.encoder_left_chunks,
        dynamic_chunk_training=cfg.dynamic_chunk_training,
    )


def build_cif(cfg: S2TCifConfig) -> Cif:
    """The CIF module of ``cfg`` over encoder frames of ``cfg.encoder_embed_dim``."""
    weight_predictor = CifWeightPredictor(
        cfg.encoder_embed_dim,
        predictor_type=str(cfg.produce_weight_type),
        conv_width=cfg.conv_cif_width,
        conv_channels=cfg.conv_cif_output_channels_num,
        dropout=cfg.conv_cif_dropout,
        dense_units=cfg.dense_cif_units_num,
    )
    return Cif(
        weight_predictor,
        input_dim=cfg.encoder_embed_dim,
        output_dim=cfg.cif_embedding_dim,
        threshold=cfg.cif_threshold,
        apply_scaling=cfg.apply_scaling,
        apply_tail_handling=cfg.apply_tail_handling,
        tail_threshold=cfg.tail_handling_firing_threshold,
    )


def build_ctc_projection(cfg: S2TEncoderConfig, dictionary) -> nn.Linear:
    """Linear(encoder dim -> vocabulary), xavier-initialised as published."""
    projection = nn.Linear(cfg.encoder_embed_dim, len(dictionary))
    nn.init.xavier_uniform_(projection.weight)
    return projection

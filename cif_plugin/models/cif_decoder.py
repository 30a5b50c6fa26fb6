"""Decoders over CIF outputs (docs/model.md, "Decoder"), built from fairseq's Transformer decoder layers.

The autoregressive decoder is a causal Transformer LM conditioned on the acoustics without
cross-attention: step i reads [scaled embedding(y_{i-1}) ; c_{i-1}] and its output layer reads
[h_i ; c_i], where c_i is the i-th CIF vector. The non-autoregressive one runs the same layers
over the CIF vectors alone.
"""

import math
from typing import Any, Dict, List, Optional, Tuple

import torch
from fairseq.models import FairseqDecoder
from fairseq.models.transformer import TransformerConfig
from fairseq.modules import LayerNorm, PositionalEmbedding
from fairseq.modules.transformer_layer import TransformerDecoderLayerBase
from torch import Tensor, nn

__all__ = ["CifArDecoder", "CifNarDecoder", "DecoderLayerOptions", "DECODER_STATE_SOURCES"]

DECODER_STATE_SOURCES = ("tfm_outputs", "pre_final_output_proj")
EncoderOut = Dict[str, Any]


class DecoderLayerOptions:
    """Shape and regularisation of the Transformer decoder layers.

    Args:
        embed_dim (int): ``decoder_embed_dim``.
        ffn_dim (int): ``decoder_ffn_embed_dim``.
        num_layers (int): ``decoder_layers``.
        num_heads (int): ``decoder_attention_heads``.
        dropout (float): residual dropout inside the layers (``decoder_dropout``).
        attention_dropout (float): ``decoder_attention_dropout``.
        activation_dropout (float): ``decoder_activation_dropout``.
        activation_fn (str): ``activation_fn`` (relu in the paper).
        normalize_before (bool): pre-norm layers (``decoder_normalize_before``).
        final_norm (bool): LayerNorm after the stack when pre-norm (not ``no_decoder_final_norm``).
    """

    def __init__(
        self,
        embed_dim: int,
        ffn_dim: int,
        num_layers: int,
        num_heads: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
        activation_fn: str = "relu",
        normalize_before: bool = True,
        final_norm: bool = True,
    ):
        if embed_dim % num_heads:
            raise ValueError(f"{num_heads} decoder heads do not divide dimension {embed_dim}")
        self.embed_dim, self.num_layers, self.normalize_before, self.final_norm = (
            embed_dim, num_layers, normalize_before, final_norm,
        )  # fmt: skip
        self.config = TransformerConfig()
        self.config.dropout = dropout
        self.config.attention_dropout = attention_dropout
        self.config.activation_dropout = activation_dropout
        self.config.activation_fn = activation_fn
        self.config.decoder.embed_dim = embed_dim
        self.config.decoder.ffn_embed_dim = ffn_dim
        self.config.decoder.attention_heads = num_heads
        self.config.decoder.normalize_before = normalize_before

    def build_layers(self) -> nn.ModuleList:
        layers = nn.ModuleList(
            TransformerDecoderLayerBase(self.config, no_encoder_attn=True) for _ in range(self.num_layers)
        )
        for layer in layers:
            # Otherwise fairseq hands teacher-forced attention to torch's fused kernel, whose softmax
            # rounds differently (~1e-7); this flag (fairseq's own bypass) keeps fairseq's arithmetic
            # (float32 softmax), which step-by-step decoding (generation/cached_decoding.py) repeats.
            layer.self_attn.skip_embed_dim_check = True
        return layers

    def build_final_norm(self) -> Optional[LayerNorm]:
        return LayerNorm(self.embed_dim) if self.normalize_before and self.final_norm else None


def _xavier_linear(in_dim: int, out_dim: int) -> nn.Linear:
    linear = nn.Linear(in_dim, out_dim, bias=False)
    nn.init.xavier_uniform_(linear.weight)
    return linear


def _normal_linear(in_dim: int, out_dim: int) -> nn.Linear:
    linear = nn.Linear(in_dim, out_dim, bias=False)
    nn.init.normal_(linear.weight, mean=0.0, std=in_dim**-0.5)
    return linear


def _future_mask(length: int, reference: Tensor) -> Tensor:
    """(T, T) additive causal mask: -inf above the diagonal."""
    return torch.triu(torch.full((length, length), float("-inf"), device=reference.device), 1).to(
        reference.dtype
    )


def _run_layers(
    layers: nn.ModuleList, x: Tensor, self_attn_mask: Optional[Tensor], padding_mask: Optional[Tensor]
) -> Tuple[Tensor, List[Tensor]]:
    """(B, T, C) -> (B, T, C) through fairseq decoder layers (which work time first)."""
    x = x.transpose(0, 1)
    inner_states = [x]
    for layer in layers:
        x, _, _ = layer(x, self_attn_mask=self_attn_mask, self_attn_padding_mask=padding_mask)
        inner_states.append(x)
    return x.transpose(0, 1), inner_states


class CifArDecoder(FairseqDecoder):
    """Autoregressive CIF decoder, teacher-forced.

    ``forward`` returns (logits (B, M, V), extra) with M = min(N, S) for N CIF vectors and S
    previous tokens; ``extra["decoder_states"]`` (B, M, D) holds the states the distillation
    losses read: the final-norm outputs (``tfm_outputs``) or the input of the vocabulary
    projection (``pre_final_output_proj``). Decoding runs it one token at a time through
    ``cif_plugin.generation.cached_decoding.CifDecoderSteps``, which reads these same modules.

    Args:
        dictionary: target dictionary (its pad index pads embeddings and positions).
        cif_dim (int): CIF vector dimension (``cif_embedding_dim``).
        layers (DecoderLayerOptions): the Transformer layers.
        input_dropout (float): dropout on the layer input (the model's ``dropout``, 0.1 in the
            paper, while the layers use ``decoder_dropout``, as published: docs/differences.md).
        max_target_positions (int): positional table size (``max_target_positions``).
        learned_positions (bool): learned instead of sinusoidal positions (``decoder_learned_pos``).
        use_positions (bool): add positions (not ``no_token_positional_embeddings``).
        share_input_output_embed (bool): tie the vocabulary projection to the embeddings.
        states_from (str): ``fetch_decoder_states_from``, one of ``DECODER_STATE_SOURCES``.
    """

    def __init__(
        self,
        dictionary,
        cif_dim: int,
        layers: DecoderLayerOptions,
        input_dropout: float = 0.1,
        max_target_positions: int = 1024,
        learned_positions: bool = False,
        use_positions: bool = True,
        share_input_output_embed: bool = False,
        states_from: str = "tfm_outputs",
    ):
        super().__init__(dictionary)
        if states_from not in DECODER_STATE_SOURCES:
            raise ValueError(f"states_from must be one of {DECODER_STATE_SOURCES}, got {states_from!r}")
        embed_dim, padding_idx = layers.embed_dim, dictionary.pad()
        self.padding_idx = padding_idx
        self.states_from = states_from
        self.max_target_positions = max_target_positions
        self.embed_tokens = nn.Embedding(len(dictionary), embed_dim, padding_idx=padding_idx)
        nn.init.normal_(self.embed_tokens.weight, mean=0.0, std=embed_dim**-0.5)
        nn.init.zeros_(self.embed_tokens.weight[padding_idx])
        self.embed_scale = math.sqrt(embed_dim)
        self.input_proj = _xavier_linear(embed_dim + cif_dim, embed_dim)
        self.embed_positions = (
            PositionalEmbedding(max_target_positions, embed_dim, padding_idx, learned=learned_positions)
            if use_positions
            else None
        )
        self.dropout = nn.Dropout(input_dropout)
        self.layers = layers.build_layers()
        self.layer_norm = layers.build_final_norm()
        self.output_concat_proj = _xavier_linear(embed_dim + cif_dim, embed_dim)
        if share_input_output_embed:
            self.output_projection = nn.Linear(embed_dim, len(dictionary), bias=False)
            self.output_projection.weight = self.embed_tokens.weight
        else:
            self.output_projection = _normal_linear(embed_dim, len(dictionary))

    def forward(
        self,
        prev_output_tokens: Tensor,
        encoder_out: EncoderOut,
        **unused,
    ) -> Tuple[Tensor, Dict[str, Any]]:
        """
        Args:
            prev_output_tokens (Tensor): (B, S) ``</s>`` followed by the target tokens so far.
            encoder_out (dict): ``cif_out`` (B, N, C) CIF vectors.

        Returns:
            (Tensor, dict): (B, M, V) logits and
            ``{"attn": [None], "inner_states": [...], "decoder_states": (B, M, D)}``.
        """
        cif = encoder_out["cif_out"]
        length = min(cif.size(1), prev_output_tokens.size(1))
        tokens, cif = prev_output_tokens[:, :length], cif[:, :length]
        previous_cif = nn.functional.pad(cif[:, :-1], (0, 0, 1, 0))  # c_{i-1}, zero at i = 0
        positions = self.embed_positions(tokens) if self.embed_positions is not None else None

        x = self.input_proj(
            torch.cat([self.embed_scale * self.embed_tokens(tokens), previous_cif.to(cif.dtype)], -1)
        )
        if positions is not None:
            x = x + positions
        x = self.dropout(x)
        padding_mask = tokens.eq(self.padding_idx)
        x, inner_states = _run_layers(
            self.layers, x, _future_mask(x.size(1), x), padding_mask if padding_mask.any() else None
        )
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        output_states = self.output_concat_proj(torch.cat([x, cif], dim=-1))
        decoder_states = x if self.states_from == "tfm_outputs" else output_states
        logits = self.output_projection(output_states)
        return logits, {"attn": [None], "inner_states": inner_states, "decoder_states": decoder_states}

    def max_positions(self) -> int:
        return self.max_target_positions


class CifNarDecoder(FairseqDecoder):
    """Non-autoregressive decoder: Transformer layers over the CIF vectors alone.

    No token embedding and no output concatenation; the vectors are projected to the decoder
    dimension only when it differs, and positions are added only with ``add_positions``
    (``add_pos_to_cif``). Self-attention is ``full`` or causal (``triangle``)
    (``decoder_nar_pad_type``). Returns logits for all N CIF positions.

    Args:
        dictionary: target dictionary.
        cif_dim (int): CIF vector dimension.
        layers (DecoderLayerOptions): the Transformer layers.
        input_dropout (float): dropout on the layer input.
        attention_type (str): ``full`` or ``triangle``.
        add_positions (bool): add sinusoidal positions to the CIF vectors.
        max_target_positions (int): positional table size.
        states_from (str): ``tfm_outputs`` or ``pre_final_output_proj`` (here the same tensor).
    """

    def __init__(
        self,
        dictionary,
        cif_dim: int,
        layers: DecoderLayerOptions,
        input_dropout: float = 0.1,
        attention_type: str = "full",
        add_positions: bool = False,
        max_target_positions: int = 1024,
        states_from: str = "tfm_outputs",
    ):
        super().__init__(dictionary)
        if attention_type not in ("full", "triangle"):
            raise ValueError(f"attention_type must be 'full' or 'triangle', got {attention_type!r}")
        embed_dim = layers.embed_dim
        self.padding_idx = dictionary.pad()
        self.attention_type = attention_type
        self.max_target_positions = max_target_positions
        self.input_proj = _xavier_linear(cif_dim, embed_dim) if cif_dim != embed_dim else None
        self.embed_positions = (
            PositionalEmbedding(max_target_positions, embed_dim, self.padding_idx) if add_positions else None
        )
        self.dropout = nn.Dropout(input_dropout)
        self.layers = layers.build_layers()
        self.layer_norm = layers.build_final_norm()
        self.output_projection = _normal_linear(embed_dim, len(dictionary))

    def forward(self, prev_output_tokens: Optional[Tensor], encoder_out: EncoderOut, **unused):
        """
        Args:
            prev_output_tokens: ignored (kept for fairseq's decoder signature).
            encoder_out (dict): ``cif_out`` (B, N, C) and ``cif_padding_mask`` (B, N).

        Returns:
            (Tensor, dict): (B, N, V) logits and ``{"attn", "inner_states", "decoder_states"}``.
        """
        cif, cif_padding_mask = encoder_out["cif_out"], encoder_out["cif_padding_mask"]
        x = self.input_proj(cif) if self.input_proj is not None else cif
        if self.embed_positions is not None:
            pseudo_tokens = torch.where(cif_padding_mask, self.padding_idx, self.padding_idx + 1)
            x = x + self.embed_positions(pseudo_tokens)
        x = self.dropout(x)
        causal_mask = _future_mask(x.size(1), x) if self.attention_type == "triangle" else None
        x, inner_states = _run_layers(self.layers, x, causal_mask, cif_padding_mask)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return self.output_projection(x), {"attn": [None], "inner_states": inner_states, "decoder_states": x}

    def max_positions(self) -> int:
        return self.max_target_positions

"""The modules traced into ONNX graphs (docs/onnx.md): what each family's search reads, and nothing else.

Every graph takes (B, T, F) features and (B,) frame counts with B and T dynamic:

- CIF: :class:`CifEncoderGraph` (conformer, CTC head, CIF weights, integrate-and-fire) and
  :class:`CifDecoderStepGraph` (one step of the autoregressive decoder over a key/value cache), and
  with a fused LM :class:`LanguageModelStepGraph` (one step of the LM, the same way);
- CTC: :class:`CtcEncoderGraph` (log-probabilities);
- ASG: :class:`AsgEncoderGraph` (emissions; the transition matrix, a constant, is saved beside it).

The encoder is the model's own forward, which avoids control flow on the input's values while it
is being traced (see ``torch.jit.is_tracing`` in the attention and the linear layers); the CIF uses
:func:`~cif_plugin.modules.integrate_and_fire_dense.integrate_and_fire_dense`, the same fires as
training and PyTorch decoding without a host read of the token count.
"""

import contextlib
import functools
from typing import Iterator, Tuple

import torch
from torch import Tensor, nn

from ..generation.cached_decoding import (
    LayerStepWeights,
    affine,
    decoder_layer_step,
    language_model_input,
    language_model_output,
    layer_step_weights,
    step_positions,
)
from ..models.cif_decoder import CifArDecoder
from ..modules.integrate_and_fire_dense import integrate_and_fire_dense
from ..modules.masks import padding_mask_from_lengths

__all__ = [
    "AsgEncoderGraph",
    "CifDecoderStepGraph",
    "CifEncoderGraph",
    "CtcEncoderGraph",
    "LanguageModelStepGraph",
    "kept_position_projections",
]


class _EncoderGraph(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def encode(self, features: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        output = self.model.forward_encoder(features, lengths, self.model.encoder.chunk_size)
        return output["encoder_out"], output["encoder_lengths"]


@contextlib.contextmanager
def kept_position_projections(encoder, frames: int) -> Iterator[None]:
    """While tracing, every block's attention takes its projected relative encodings from a constant
    table of the distances of ``frames`` first-stage frames (halved after each pooling), and projects
    only the encodings of longer inputs' outer distances: what inference in PyTorch keeps between
    calls (``Float32SoftmaxRelPositionAttention._projected_positions``), kept in the graph."""
    attentions = []
    with torch.no_grad():
        for layer_id, block in enumerate(encoder.blocks, start=1):
            zeros = torch.zeros(frames, 1, block.self_attn.d_k * block.self_attn.h)
            block.self_attn.keep_traced_positions(encoder.pos_encoding(zeros))
            attentions.append(block.self_attn)
            if layer_id in encoder.pooling_layer_ids:
                frames = (frames + 1) // 2
    try:
        yield
    finally:
        for attention in attentions:
            attention.keep_traced_positions(None)


class CifEncoderGraph(_EncoderGraph):
    """(B, T, F) features, (B,) lengths -> cif_out (B, N, C), fire_counts
    (B,), fire_frames (B, N), cif_weights (B, T'), encoder_lengths (B,), ctc_log_probs (B, T', V).

    Args:
        model: an ``S2TCifTransformerModel`` in eval mode.
        tail_threshold (float): the CIF tail firing threshold decoding uses.
    """

    def __init__(self, model, tail_threshold: float):
        super().__init__(model)
        cif = model.cif
        self.tail_threshold = tail_threshold if cif.apply_tail_handling else None

    def forward(self, features: Tensor, lengths: Tensor):
        encoder_out, encoder_lengths = self.encode(features, lengths)
        cif = self.model.cif
        padding_mask = padding_mask_from_lengths(encoder_lengths, encoder_out.size(1))
        alpha = cif.weight_predictor(encoder_out, padding_mask, self.model.encoder.chunk_size)
        fired = integrate_and_fire_dense(
            encoder_out, alpha, encoder_lengths, cif.threshold, self.tail_threshold
        )
        cif_out = fired.cif_out.to(encoder_out.dtype)
        if cif.output_proj is not None:
            cif_out = cif.output_proj(cif_out)
        ctc_log_probs = torch.log_softmax(self.model.forward_ctc(encoder_out).float(), dim=-1)
        return cif_out, fired.fire_counts, fired.fire_frames, alpha, encoder_lengths, ctc_log_probs


class CtcEncoderGraph(_EncoderGraph):
    """(B, T, F), (B,) -> ctc_log_probs (B, T', V), encoder_lengths (B,) of an ``S2TCtcConformerModel``."""

    def forward(self, features: Tensor, lengths: Tensor):
        encoder_out, encoder_lengths = self.encode(features, lengths)
        return torch.log_softmax(self.model.ctc_proj(encoder_out).float(), dim=-1), encoder_lengths


class AsgEncoderGraph(_EncoderGraph):
    """(B, T, F), (B,) -> emissions (B, T', V), encoder_lengths (B,) of an ``S2TAsgConformerModel``
    (Viterbi reads the emissions as scores, unnormalised)."""

    def forward(self, features: Tensor, lengths: Tensor):
        encoder_out, encoder_lengths = self.encode(features, lengths)
        emissions = self.model.output_proj(encoder_out).float()
        return emissions, encoder_lengths


class CifDecoderStepGraph(nn.Module):
    """One step of ``CifArDecoder`` for R rows (utterances x beams) over a cache of the S earlier steps.

    Step i reads [scaled embedding(y_{i-1}) ; c_{i-1}] (``prev_tokens``, ``prev_cif``; ``</s>`` and
    zeros at step 0) and its output layer reads [h_i ; c_i] (``cif``). ``cache`` (L, 2, R, H, S, d)
    holds every layer's keys and values of steps 0..S-1 (S = ``step``); the graph returns the
    (R, V) logits and the cache with this step's keys and values appended. The same arithmetic as
    ``cif_plugin.generation.cached_decoding.CifDecoderSteps``, through the same layer step.

    Args:
        decoder (CifArDecoder): in eval mode.
    """

    def __init__(self, decoder: CifArDecoder):
        super().__init__()
        self.decoder = decoder
        table = _position_table(decoder, decoder.max_target_positions)
        if table is None:
            table = torch.zeros(decoder.max_target_positions, decoder.input_proj.out_features)
        self.register_buffer("position_table", table, persistent=False)

    def forward(self, prev_tokens: Tensor, prev_cif: Tensor, cif: Tensor, step: Tensor, cache: Tensor):
        decoder = self.decoder
        embedded = decoder.embed_scale * decoder.embed_tokens(prev_tokens)
        x = decoder.input_proj(torch.cat([embedded, prev_cif], dim=-1)) + self.position_table[step]
        x, next_cache = _layers_step(decoder.layers, x, cache)
        if decoder.layer_norm is not None:
            x = decoder.layer_norm(x)
        logits = decoder.output_projection(decoder.output_concat_proj(torch.cat([x, cif], dim=-1)))
        return logits, next_cache


class LanguageModelStepGraph(nn.Module):
    """One step of a fairseq Transformer language model (shallow fusion) for R rows over a cache of
    the S earlier steps: ``prev_tokens`` (R,) (``</s>`` at step 0), ``step`` (), ``cache``
    (L, 2, R, H, S, d) -> (R, V) logits and the cache with this step appended. The same arithmetic
    as ``cif_plugin.generation.cached_decoding.LanguageModelSteps``, through the same layer step.

    Args:
        lm: a fairseq LM in eval mode (``lm.decoder`` a ``TransformerDecoder``).
        max_steps (int): the positions the graph holds (the recogniser's decoder positions).
    """

    def __init__(self, lm, max_steps: int):
        super().__init__()
        self.decoder = lm.decoder
        self.register_buffer("position_table", _position_table(lm.decoder, max_steps), persistent=False)

    def forward(self, prev_tokens: Tensor, step: Tensor, cache: Tensor):
        position = self.position_table[step] if self.position_table is not None else None
        x = language_model_input(self.decoder, prev_tokens, position)
        x, next_cache = _layers_step(self.decoder.layers, x, cache)
        return language_model_output(self.decoder, x), next_cache


def _position_table(decoder, steps: int):
    """(steps, C) positional embeddings of a fairseq decoder's steps (None without them), kept in
    the graph as a constant table indexed by the step."""
    with torch.no_grad():
        return step_positions(decoder.embed_positions, steps, decoder.padding_idx + 1, torch.zeros(()))


def _layers_step(layers: nn.ModuleList, x: Tensor, cache: Tensor) -> Tuple[Tensor, Tensor]:
    """(R, C) step inputs through fairseq decoder layers (self-attention only) over the (L, 2, R, H,
    S, d) cache -> (R, C) outputs and the (L, 2, R, H, S + 1, d) cache with this step appended."""
    caches = []

    def attend(weights: LayerStepWeights, h: Tensor, layer_cache: Tensor) -> Tensor:
        attended, grown = _self_attention(weights, h, layer_cache)
        caches.append(grown)
        return attended

    for index, layer in enumerate(layers):
        weights = layer_step_weights(layer, transpose=torch.t, stack=torch.cat)  # traced from the parameters
        x = decoder_layer_step(weights, x, functools.partial(attend, layer_cache=cache[index]))
    return x, torch.stack(caches)


def _self_attention(weights: LayerStepWeights, x: Tensor, cache: Tensor) -> Tuple[Tensor, Tensor]:
    """(R, C) step inputs, (2, R, H, S, d) cache -> (R, C) output, (2, R, H, S + 1, d) cache."""
    attention = weights.attention
    rows, width, heads, head_dim = x.size(0), x.size(1), attention.num_heads, attention.head_dim
    query_key_value = affine(x, weights.query_key_value)  # (R, 3C)
    query = (query_key_value[:, :width] * attention.scaling).view(rows, heads, 1, head_dim)
    key_value = query_key_value[:, width:].view(rows, 2, heads, 1, head_dim).transpose(0, 1)
    cache = torch.cat([cache, key_value], dim=3)
    scores = torch.softmax(torch.matmul(query, cache[0].transpose(-1, -2)).float(), dim=-1)
    attended = torch.matmul(scores.to(cache.dtype), cache[1])  # (R, H, 1, d)
    return affine(attended.view(rows, -1), weights.attention_out), cache

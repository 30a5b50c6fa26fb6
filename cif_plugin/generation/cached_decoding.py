"""Step-by-step decoding on preallocated key/value caches (docs/model.md, "Decoding").

Beam and greedy search run the CIF decoder, and the language model in shallow fusion, one token
per step. fairseq's incremental decoding keeps a dictionary of cached states per attention module
and grows every cache by concatenation, which costs more than the arithmetic of a small decoder.
Here each stack of fairseq Transformer decoder layers (self-attention only) writes its keys and
values into one tensor allocated for all steps, indexed by step; reordering the beam is one
``index_select`` on that tensor; what does not depend on the decoded tokens (the CIF terms of the
input and output projections, the positions) is computed once per batch. A step multiplies a few
rows by every weight matrix, so its cost is reading the weights and calling the operators: the
weights of each layer are resolved once per search (:class:`LayerStepWeights`, (in, out) copies
from ``cif_plugin.modules.inference_linear``, which the matrix-vector kernel reads fastest, kept until
a weight changes) and a step calls ``torch.addmm`` and ``layer_norm`` on them directly. Evaluation
only: no dropout is applied.
"""

import functools
from typing import Callable, List, NamedTuple, Optional, Tuple

import torch
from fairseq.modules.transformer_layer import TransformerDecoderLayerBase
from torch import Tensor, nn

from ..modules.inference_linear import apply_linear, stacked, transposed

__all__ = [
    "CachedDecoderLayers",
    "CifDecoderSteps",
    "LanguageModelSteps",
    "LayerStepWeights",
    "affine",
    "decoder_layer_step",
    "language_model_input",
    "language_model_output",
    "layer_step_weights",
    "step_positions",
]


def _check_supported(layer: TransformerDecoderLayerBase) -> None:
    unsupported = {
        "cross_self_attention": layer.cross_self_attention,
        "scale_heads": layer.c_attn is not None,
        "scale_attn": layer.attn_ln is not None,
        "scale_fc": layer.ffn_layernorm is not None,
        "scale_resids": layer.w_resid is not None,
        "add_bias_kv": layer.self_attn.bias_k is not None,
        "add_zero_attn": layer.self_attn.add_zero_attn,
    }
    found = [name for name, used in unsupported.items() if used]
    if found:
        raise ValueError(f"cached decoding does not support decoder layers with {', '.join(found)}")


class LayerStepWeights(NamedTuple):
    """What one step of a fairseq decoder layer reads, resolved once: layer norms as
    ``(shape, weight, bias, eps)``, linear maps as an (in, out) weight and a bias (or None) for
    ``torch.addmm``, and the query, key and value maps stacked into one (C, 3C) product."""

    normalize_before: bool
    attention: nn.Module  # the layer's MultiheadAttention (heads, scaling)
    attention_norm: tuple
    final_norm: tuple
    query_key_value: Tuple[Tensor, Optional[Tensor]]
    attention_out: Tuple[Tensor, Optional[Tensor]]
    fc1: Tuple[Tensor, Optional[Tensor]]
    fc2: Tuple[Tensor, Optional[Tensor]]
    activation: Callable[[Tensor], Tensor]


def layer_step_weights(
    layer: TransformerDecoderLayerBase, transpose: Callable = transposed, stack: Callable = stacked
) -> LayerStepWeights:
    """The :class:`LayerStepWeights` of ``layer``. ``transpose`` and ``stack`` make the (in, out)
    and stacked weights: by default copies kept until the weights change; a graph export passes
    ``Tensor.t`` and ``torch.cat`` so that the traced graph reads the parameters."""
    _check_supported(layer)
    attention = layer.self_attn
    projections = (attention.q_proj, attention.k_proj, attention.v_proj)
    biases = [projection.bias for projection in projections]  # fairseq gives all three or none
    query_key_value = transpose(stack([projection.weight for projection in projections]))
    return LayerStepWeights(
        normalize_before=layer.normalize_before,
        attention=attention,
        attention_norm=_norm(layer.self_attn_layer_norm),
        final_norm=_norm(layer.final_layer_norm),
        query_key_value=(query_key_value, None if biases[0] is None else stack(biases)),
        attention_out=(transpose(attention.out_proj.weight), attention.out_proj.bias),
        fc1=(transpose(layer.fc1.weight), layer.fc1.bias),
        fc2=(transpose(layer.fc2.weight), layer.fc2.bias),
        activation=layer.activation_fn,
    )


def _norm(norm: nn.LayerNorm) -> tuple:
    return norm.normalized_shape, norm.weight, norm.bias, norm.eps


def _layer_norm(x: Tensor, norm: tuple) -> Tensor:
    return nn.functional.layer_norm(x, *norm)


def affine(x: Tensor, weight_and_bias: Tuple[Tensor, Optional[Tensor]]) -> Tensor:
    """(rows, in) -> (rows, out) through an (in, out) weight and a bias (or None)."""
    weight, bias = weight_and_bias
    return torch.mm(x, weight) if bias is None else torch.addmm(bias, x, weight)


def decoder_layer_step(weights: LayerStepWeights, x: Tensor, self_attention: Callable) -> Tensor:
    """One fairseq decoder layer without encoder attention on (rows, C) inputs of one step;
    ``self_attention(weights, x)`` gives the (rows, C) output of its self-attention over the
    earlier steps (the caller keeps the keys and values)."""
    residual = x
    if weights.normalize_before:
        x = _layer_norm(x, weights.attention_norm)
    x = residual + self_attention(weights, x)
    if not weights.normalize_before:
        x = _layer_norm(x, weights.attention_norm)
    residual = x
    if weights.normalize_before:
        x = _layer_norm(x, weights.final_norm)
    x = residual + affine(weights.activation(affine(x, weights.fc1)), weights.fc2)
    if not weights.normalize_before:
        x = _layer_norm(x, weights.final_norm)
    return x


class CachedDecoderLayers:
    """fairseq decoder layers run one step at a time over ``rows`` sequences.

    A step is few operations on weights resolved once (:class:`LayerStepWeights`): each layer's
    query, key and value come out of one matrix product, the step's key and value go into the
    cache with one copy, and ``scaled_dot_product_attention`` attends over the cached steps
    (fairseq's scaling, a softmax over the earlier steps: the same sums as fairseq's incremental
    ``MultiheadAttention``).

    Args:
        layers (nn.ModuleList): ``TransformerDecoderLayerBase`` layers without encoder attention use.
        rows (int): sequences decoded together (utterances x beams).
        max_steps (int): steps the caches are allocated for.
        like (Tensor): gives the caches' device and dtype.
    """

    def __init__(self, layers: nn.ModuleList, rows: int, max_steps: int, like: Tensor):
        self.weights = [layer_step_weights(layer) for layer in layers]
        attention = layers[0].self_attn
        self.heads, self.head_dim = attention.num_heads, attention.head_dim
        # (layer, key/value, row, head, step, head_dim)
        self.cache = like.new_zeros(len(layers), 2, rows, self.heads, max_steps, self.head_dim)

    def step(self, x: Tensor, step: int) -> Tensor:
        """(rows, C) inputs at ``step`` -> (rows, C) outputs of the last layer."""
        for index, weights in enumerate(self.weights):
            attend = functools.partial(self._self_attention, cache=self.cache[index], step=step)
            x = decoder_layer_step(weights, x, attend)
        return x

    def _self_attention(self, weights: LayerStepWeights, x: Tensor, cache: Tensor, step: int) -> Tensor:
        """fairseq ``MultiheadAttention`` over steps 0..step; writes this step's key and value into
        the layer's (2, rows, heads, steps, head_dim) ``cache``."""
        rows, width = x.shape
        query_key_value = affine(x, weights.query_key_value)  # (rows, 3C)
        cache[:, :, :, step] = (
            query_key_value[:, width:].view(rows, 2, self.heads, self.head_dim).transpose(0, 1)
        )
        query = query_key_value[:, :width].view(rows, self.heads, 1, self.head_dim)
        seen = cache[:, :, :, : step + 1]
        attended = nn.functional.scaled_dot_product_attention(
            query, seen[0], seen[1], scale=weights.attention.scaling
        )
        return affine(attended.view(rows, width), weights.attention_out)

    def reorder(self, origin: Tensor) -> None:
        """Row r continues the sequence of row ``origin[r]``."""
        self.cache = self.cache.index_select(2, origin)

    def reserve(self, max_steps: int) -> None:
        """Make room for ``max_steps`` steps (a stream's caches grow by doubling)."""
        allocated = self.cache.size(4)
        if max_steps > allocated:
            grown = self.cache.new_zeros(*self.cache.shape[:4], max(max_steps, 2 * allocated), self.head_dim)
            grown[:, :, :, :, :allocated] = self.cache
            self.cache = grown


def step_positions(embed_positions, steps: int, token: int, like: Tensor) -> Optional[Tensor]:
    """(steps, C) positional embeddings of steps 0..steps-1 (``token`` is any non-pad index), in
    ``like``'s dtype; None without positional embeddings."""
    if embed_positions is None:
        return None
    if steps == 0:  # no fire in the batch: nothing to decode
        return like.new_zeros(0, embed_positions.embedding_dim)
    dummy = torch.full((1, steps), token, dtype=torch.long, device=like.device)
    return embed_positions(dummy)[0].to(like.dtype)


class CifDecoderSteps:
    """The autoregressive CIF decoder (``CifArDecoder``) one token at a time.

    Step i reads [scaled embedding(y_{i-1}) ; c_{i-1}] and its output reads [h_i ; c_i]: the CIF
    halves of both projections are computed once per utterance for all its steps, and a reordered
    row reads its utterance's (the beams of an utterance share its CIF vectors: reordering them
    moves only the decoder's caches).

    Args:
        decoder: a ``CifArDecoder`` in eval mode.
        cif_out (Tensor): (U, N, C) CIF vectors, one row per sequence decoded at first (before any
            :meth:`reorder`).
    """

    def __init__(self, decoder, cif_out: Tensor):
        utterances, steps, cif_dim = cif_out.shape
        embed_dim = decoder.embed_tokens.embedding_dim
        self.decoder = decoder
        input_weight = transposed(decoder.input_proj.weight)  # (E + C, D)
        output_weight = transposed(decoder.output_concat_proj.weight)  # (D + C, D)
        self.token_in, self.states_out = input_weight[:embed_dim], output_weight[:embed_dim]
        self.cif_in, self.cif_out_weight = input_weight[embed_dim:], output_weight[embed_dim:]
        self.input_from_cif = cif_out.new_zeros(utterances, 0, self.token_in.size(1))  # (U, N, D)
        self.output_from_cif = cif_out.new_zeros(utterances, 0, self.states_out.size(1))  # (U, N, D)
        self.last_cif = cif_out.new_zeros(utterances, 1, cif_dim)  # c_{i-1} of the next step
        self.utterance_of_row: Optional[Tensor] = None  # (rows,) after a reorder; None: row r is utterance r
        self.embedding = decoder.embed_tokens.weight
        self.final_norm = _norm(decoder.layer_norm) if decoder.layer_norm is not None else None
        projection = decoder.output_projection
        self.output = (transposed(projection.weight), projection.bias)  # (D, V) weight, bias or None
        self.layers = CachedDecoderLayers(decoder.layers, utterances, max(steps, 1), self.input_from_cif)
        self.extend(cif_out)

    @property
    def num_steps(self) -> int:
        """Steps whose CIF vectors are known (the steps :meth:`logits` may be asked for)."""
        return self.input_from_cif.size(1)

    def extend(self, cif_out: Tensor) -> None:
        """Append the next CIF vectors (U, n, C) of each utterance: a stream's new fires."""
        if cif_out.size(1) == 0:
            return
        start, steps = self.num_steps, self.num_steps + cif_out.size(1)
        previous = torch.cat([self.last_cif, cif_out[:, :-1]], dim=1)  # c_{i-1}, zero at i = 0
        input_terms = torch.matmul(previous, self.cif_in)
        positions = step_positions(self.decoder.embed_positions, steps, self.decoder.padding_idx + 1, cif_out)
        if positions is not None:
            input_terms = input_terms + positions[start:]
        self.input_from_cif = torch.cat([self.input_from_cif, input_terms], dim=1)
        output_terms = torch.matmul(cif_out, self.cif_out_weight)
        self.output_from_cif = torch.cat([self.output_from_cif, output_terms], dim=1)
        self.last_cif = cif_out[:, -1:]
        self.layers.reserve(steps)

    def _rows(self, terms: Tensor) -> Tensor:
        """(U, D) terms of each utterance -> (rows, D) terms of each row."""
        return terms if self.utterance_of_row is None else terms.index_select(0, self.utterance_of_row)

    def logits(self, prev_tokens: Tensor, step: int) -> Tensor:
        """(rows,) previous tokens -> (rows, V) logits of the token at ``step``."""
        embedded = self.decoder.embed_scale * nn.functional.embedding(prev_tokens, self.embedding)
        x = torch.addmm(self._rows(self.input_from_cif[:, step]), embedded, self.token_in)
        x = self.layers.step(x, step)
        if self.final_norm is not None:
            x = _layer_norm(x, self.final_norm)
        output_states = torch.addmm(self._rows(self.output_from_cif[:, step]), x, self.states_out)
        return affine(output_states, self.output)

    def reorder(self, origin: Tensor) -> None:
        """Row r continues the sequence of row ``origin[r]``."""
        self.layers.reorder(origin)
        self.utterance_of_row = origin if self.utterance_of_row is None else self.utterance_of_row[origin]


def language_model_input(decoder, prev_tokens: Tensor, position: Optional[Tensor]) -> Tensor:
    """What a fairseq ``TransformerDecoder`` LM feeds its first layer at one step: (rows,) previous
    tokens and the step's (C,) positional embedding (None without positions) -> (rows, C)."""
    x = decoder.embed_scale * decoder.embed_tokens(prev_tokens)
    if decoder.project_in_dim is not None:
        x = decoder.project_in_dim(x)
    if position is not None:
        x = x + position
    if decoder.layernorm_embedding is not None:
        x = decoder.layernorm_embedding(x)
    return x


def language_model_output(decoder, x: Tensor) -> Tensor:
    """The LM's (rows, C) last-layer outputs -> (rows, V) logits."""
    if decoder.layer_norm is not None:
        x = decoder.layer_norm(x)
    if decoder.project_out_dim is not None:
        x = decoder.project_out_dim(x)
    return apply_linear(decoder.output_projection, x)


class LanguageModelSteps:
    """A fairseq Transformer language model (``TransformerDecoder``) one token at a time.

    Args:
        lm: a fairseq LM (``lm.decoder`` is a ``TransformerDecoder``) in eval mode.
        rows (int): sequences decoded together. max_steps (int): steps to allocate for.
        like (Tensor): gives the device and dtype.
    """

    def __init__(self, lm, rows: int, max_steps: int, like: Tensor):
        decoder = lm.decoder
        unsupported: List[str] = []
        if getattr(decoder, "adaptive_softmax", None) is not None:
            unsupported.append("an adaptive softmax")
        if getattr(decoder, "quant_noise", None) is not None:
            unsupported.append("quantisation noise")
        if unsupported:
            found = ", ".join(unsupported)
            raise ValueError(f"cached decoding does not support a language model with {found}")
        self.decoder = decoder
        self.dtype_like = like.new_zeros(()).to(next(lm.parameters()).dtype)
        self.positions = None
        self.layers = CachedDecoderLayers(decoder.layers, rows, max_steps, self.dtype_like)
        self.reserve(max_steps)

    def reserve(self, max_steps: int) -> None:
        """Make room for ``max_steps`` steps (a stream's LM grows with its fires)."""
        decoder = self.decoder
        if self.positions is None or self.positions.size(0) < max_steps:
            token = decoder.padding_idx + 1
            self.positions = step_positions(decoder.embed_positions, max_steps, token, self.dtype_like)
        self.layers.reserve(max_steps)

    def logits(self, prev_tokens: Tensor, step: int) -> Tensor:
        """(rows,) previous tokens -> (rows, V) next-token logits at ``step`` (step 0 reads ``</s>``)."""
        position = self.positions[step] if self.positions is not None else None
        x = language_model_input(self.decoder, prev_tokens, position)
        return language_model_output(self.decoder, self.layers.step(x, step))

    def reorder(self, origin: Tensor) -> None:
        self.layers.reorder(origin)

"""Relative-position multi-head attention with a float32 softmax (docs/differences.md, "Numerics")."""

import math
from typing import Optional, Tuple

import torch
from fairseq.modules import RelPositionMultiHeadedAttention
from torch import Tensor

from ..modules.inference_linear import apply_linear, weight_cache

__all__ = ["CACHED_POSITIONS", "Float32SoftmaxRelPositionAttention"]

CACHED_POSITIONS = 1024  # frames: the longest input whose projected encodings inference keeps, per layer


class Float32SoftmaxRelPositionAttention(RelPositionMultiHeadedAttention):
    """fairseq's ESPnet/Transformer-XL rel-pos attention, with the reference's numerics kept.

    Stock fairseq takes the softmax in the score dtype (fp16 under ``--fp16``) and leaves masked
    entries as they come out of it; here the softmax runs in float32, masked keys are reset to 0
    after it, and the result is cast back. Same parameters as the stock module.

    :meth:`attend` is the batch-first entry the conformer block uses: in float32 it hands the
    content term to ``scaled_dot_product_attention`` with the position term (and the key padding)
    as an additive bias, which equals the explicit softmax (docs/model.md, "Encoder"); in half
    precision it keeps the explicit float32 softmax. Its projections go through
    ``cif_plugin.modules.inference_linear`` (weight copies laid out for the CPU in inference).
    """

    traced_position_table: Optional[Tensor] = None  # set while a graph is traced: keep_traced_positions

    def attend(
        self,
        x: Tensor,
        padding_mask: Optional[Tensor],
        pos_emb: Tensor,
        blocked_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """Self-attention of ``x`` (what ``forward`` computes with query = key = value = x).

        Args:
            x (Tensor): (B, T, C) frames.
            padding_mask (Tensor, optional): (B, T) bool, True at padded frames.
            pos_emb (Tensor): (2T - 1, 1, C) relative positional encodings.
            blocked_mask (Tensor, optional): (T, T) bool, True where query i may not attend to key j.

        Returns:
            Tensor: (B, T, C) output of ``linear_out``.
        """
        if torch.jit.is_tracing() and x.dtype == torch.float32:
            return self._traced_attention(x, padding_mask, pos_emb, blocked_mask)
        query, key, value = self._heads(x)
        query_u, query_v = query + self.pos_bias_u.unsqueeze(1), query + self.pos_bias_v.unsqueeze(1)
        positions = self._position_heads(pos_emb)
        position_scores = self._shifted(torch.matmul(query_v, positions.transpose(-2, -1)))  # (B, H, T, T)
        if padding_mask is not None and not padding_mask.any():
            padding_mask = None
        if query.dtype != torch.float32:
            scores = (torch.matmul(query_u, key.transpose(-2, -1)) + position_scores) / math.sqrt(self.d_k)
            if blocked_mask is not None:
                scores = scores.masked_fill(blocked_mask, float("-inf"))
            return self.forward_attention(value, scores, padding_mask)
        bias = position_scores / math.sqrt(self.d_k)
        if blocked_mask is not None:
            bias = bias.masked_fill(blocked_mask, torch.finfo(bias.dtype).min)
        if padding_mask is not None:
            # finite, so a query whose keys are all padding (a zero-length utterance) gets no NaN
            bias = bias.masked_fill(padding_mask[:, None, None, :], torch.finfo(bias.dtype).min)
        self.attn = None  # not kept: the fused kernel never forms the weights
        return self._fused_attention(query_u, key, value, bias)

    def _traced_attention(self, x, padding_mask, pos_emb, blocked_mask):
        """:meth:`attend`'s float32 arithmetic in the form a traced graph runs fastest (onnxruntime,
        CPU): the 1 / sqrt(d_k) scale folded into the query projection and the position biases
        (constants of the graph; a power of two for the usual d_k, so exact), the scores formed
        explicitly, and the padding as an additive (B, 1, 1, T) bias instead of a select over the
        scores (the select took 3.5x the time of the addition on the paper model's scores)."""
        batch, frames, _ = x.shape
        scale = 1.0 / math.sqrt(self.d_k)
        bias_q = None if self.linear_q.bias is None else self.linear_q.bias * scale
        query = torch.nn.functional.linear(x, self.linear_q.weight * scale, bias_q)
        query = query.view(batch, frames, self.h, self.d_k).transpose(1, 2)
        key, value = (
            apply_linear(projection, x).view(batch, frames, self.h, self.d_k).transpose(1, 2)
            for projection in (self.linear_k, self.linear_v)
        )
        position_keys = self._traced_position_keys(pos_emb)
        all_distances = torch.matmul(
            query + self.pos_bias_v.unsqueeze(1) * scale, position_keys.transpose(-2, -1)
        )
        bias = self.rel_shift(all_distances) if self.zero_triu else _traced_shift(all_distances)
        lowest = torch.finfo(bias.dtype).min
        if blocked_mask is not None:
            bias = bias.masked_fill(blocked_mask, lowest)
        if padding_mask is not None:
            # lowest plus a score is still lowest (finite): the same weights as the masked fill
            bias = bias + padding_mask[:, None, None, :].to(bias.dtype) * lowest
        scores = torch.matmul(query + self.pos_bias_u.unsqueeze(1) * scale, key.transpose(-2, -1)) + bias
        attended = torch.matmul(torch.softmax(scores, dim=-1), value)  # (B, H, T, d_k)
        self.attn = None
        attended = attended.transpose(1, 2).reshape(batch, frames, self.h * self.d_k)
        return apply_linear(self.linear_out, attended)

    def _shifted(self, all_distances: Tensor) -> Tensor:
        """(B, H, T, 2T - 1) scores against every distance -> (B, H, T, T), where [i, j] is the
        score at distance index T - 1 - i + j: fairseq's ``rel_shift``, in inference as a strided
        view instead of a padded copy."""
        if (
            self.zero_triu
            or torch.is_grad_enabled()
            or torch.jit.is_tracing()
            or not all_distances.is_contiguous()
        ):
            return self.rel_shift(all_distances)
        batch, heads, frames, width = all_distances.shape
        return all_distances.as_strided(
            (batch, heads, frames, frames),
            (heads * frames * width, frames * width, width - 1, 1),
            all_distances.storage_offset() + frames - 1,
        )

    def attend_chunk(
        self, x: Tensor, cached_keys: Optional[Tensor], cached_values: Optional[Tensor], pos_encoding
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """Self-attention of a stream's chunk over the cached earlier frames and itself.

        The same scores as :meth:`attend` under a chunk mask: query i of the chunk and key j sit
        L + i - j frames apart (L cached frames), and that distance picks the positional encoding.

        Args:
            x (Tensor): (1, C', D) the chunk's frames (all valid).
            cached_keys, cached_values (Tensor, optional): (1, H, L, d_k) of the visible earlier frames.
            pos_encoding: ``RelPositionalEncoding`` (T -> encodings of distances T - 1 .. -(T - 1)).

        Returns:
            (Tensor, Tensor, Tensor): (1, C', D) output of ``linear_out``; keys and values
            (1, H, L + C', d_k) including the chunk's.
        """
        batch, frames, _ = x.shape
        query, key, value = self._heads(x)
        if cached_keys is not None:
            key, value = torch.cat([cached_keys, key], dim=2), torch.cat([cached_values, value], dim=2)
        total = key.size(2)
        positions = self._position_heads(pos_encoding(x.new_zeros(total, 1, 1)))  # distances total - 1 ..
        query_u, query_v = query + self.pos_bias_u.unsqueeze(1), query + self.pos_bias_v.unsqueeze(1)
        all_distances = torch.matmul(query_v, positions.transpose(-2, -1))  # (1, H, C', 2 total - 1)
        # distance L + i - j sits at index (total - 1) - (L + i - j) = C' - 1 - i + j
        query_index = torch.arange(frames, device=x.device).unsqueeze(1)
        index = frames - 1 - query_index + torch.arange(total, device=x.device)
        position_scores = all_distances.gather(3, index.expand(batch, self.h, frames, total))
        return self._fused_attention(query_u, key, value, position_scores / math.sqrt(self.d_k)), key, value

    def _heads(self, x: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """(B, T, C) frames -> projected queries, keys and values, each (B, H, T, d_k)."""
        batch, frames, _ = x.shape
        return tuple(
            apply_linear(projection, x).view(batch, frames, self.h, self.d_k).transpose(1, 2)
            for projection in (self.linear_q, self.linear_k, self.linear_v)
        )

    def keep_traced_positions(self, pos_emb: Optional[Tensor]) -> None:
        """Until called again with None, a traced graph of this module keeps the projected ``pos_emb``
        (2L - 1, 1, C) as a constant and projects only the outer distances of inputs longer than L
        (what inference in PyTorch keeps between calls, see :meth:`_projected_positions`)."""
        with torch.no_grad():
            self.traced_position_table = (
                None if pos_emb is None else self._position_heads(pos_emb).contiguous()
            )

    def _position_heads(self, pos_emb: Tensor) -> Tensor:
        """(2T - 1, 1, C) relative encodings -> projected (1, H, 2T - 1, d_k)."""
        return self._projected_positions(pos_emb).view(1, -1, self.h, self.d_k).transpose(1, 2)

    def _traced_position_keys(self, pos_emb: Tensor) -> Tensor:
        """(2T - 1, 1, C) relative encodings -> projected (1, H, 2T - 1, d_k). Where the graph keeps
        them as a constant table (1, H, 2L - 1, d_k) of the distances L - 1 .. -(L - 1)
        (:meth:`keep_traced_positions`): its middle 2T - 1 where T <= L, else the table between the
        projections of the T - L outermost distances on either side. The sizes are traced, so the
        graph takes any T."""
        table = self.traced_position_table
        if table is None:
            return self._position_heads(pos_emb)
        rows, kept = pos_emb.size(0), table.size(2)
        start = torch.clamp((kept - rows) // 2, min=0)
        excess = torch.clamp((rows - kept) // 2, min=0)
        first, last = (self._position_heads(part) for part in (pos_emb[:excess], pos_emb[rows - excess :]))
        return torch.cat([first, table[:, :, start : kept - start], last], dim=2)

    def _projected_positions(self, pos_emb: Tensor) -> Tensor:
        """(2T - 1, 1, C) relative encodings -> ``linear_pos`` of them, (1, 2T - 1, C).

        The encodings of length T are the middle of those of any longer length (distances
        T - 1 .. -(T - 1)), and so is their projection: in inference the projection of the longest
        encodings seen (up to ``CACHED_POSITIONS`` frames) is kept with the weight and sliced, after
        a check that the encodings given are indeed the middle of the kept ones.
        """
        if torch.is_grad_enabled() or torch.jit.is_tracing():
            return apply_linear(self.linear_pos, pos_emb.transpose(0, 1))
        kept = weight_cache(self.linear_pos.weight)
        source, version, projected = kept.get("positions", (None, None, None))
        rows = pos_emb.size(0)
        if source is not None and source._version != version:  # written in place since: forget it
            source = None
        if source is not None and source.size(0) >= rows and source.dtype == pos_emb.dtype:
            start = (source.size(0) - rows) // 2
            if source.device == pos_emb.device and _is_middle(pos_emb, source, start):
                return projected[:, start : start + rows]
        fresh = apply_linear(self.linear_pos, pos_emb.transpose(0, 1))
        if rows <= 2 * CACHED_POSITIONS - 1 and (source is None or rows > source.size(0)):
            kept["positions"] = (pos_emb, pos_emb._version, fresh)
        return fresh

    def _fused_attention(self, query_u: Tensor, key: Tensor, value: Tensor, bias: Tensor) -> Tensor:
        """``scaled_dot_product_attention`` with the additive ``bias`` (B, H, T1, T2), then
        ``linear_out``: (B, T1, C)."""
        attended = torch.nn.functional.scaled_dot_product_attention(
            query_u, key, value, attn_mask=bias, dropout_p=self.dropout.p if self.training else 0.0
        )
        batch, _, frames, _ = attended.shape
        attended = attended.transpose(1, 2).reshape(batch, frames, self.h * self.d_k)
        return apply_linear(self.linear_out, attended)

    def forward_attention(self, value: Tensor, scores: Tensor, mask: Optional[Tensor]) -> Tensor:
        """
        Args:
            value (Tensor): (B, H, T2, d_k) projected values.
            scores (Tensor): (B, H, T1, T2) attention scores.
            mask (Tensor, optional): (B, T2) bool key padding mask, True at padding.

        Returns:
            Tensor: (B, T1, H * d_k) attended values after the output projection.
        """
        batch = value.size(0)
        with torch.autocast(device_type=scores.device.type, enabled=False):
            scores = scores.float()
            if mask is not None:
                key_mask = mask.unsqueeze(1).unsqueeze(2).to(torch.bool)
                attn = torch.softmax(scores.masked_fill(key_mask, float("-inf")), dim=-1)
                attn = attn.masked_fill(key_mask, 0.0)
            else:
                attn = torch.softmax(scores, dim=-1)
        self.attn = attn.to(value.dtype)
        x = torch.matmul(self.dropout(self.attn), value)  # (B, H, T1, d_k)
        x = x.transpose(1, 2).reshape(batch, -1, self.h * self.d_k)
        return self.linear_out(x)


def _is_middle(encodings: Tensor, kept: Tensor, start: int) -> bool:
    """Whether ``encodings`` equal ``kept[start : start + len(encodings)]``. A slice of the same
    unchanged table (what the encoder's positional encoding returns) is known equal by where it
    sits in memory; anything else is compared value by value."""
    same_place = (
        encodings.untyped_storage().data_ptr() == kept.untyped_storage().data_ptr()
        and encodings._version == kept._version  # views of one table share its version counter
        and encodings.stride() == kept.stride()
        and encodings.storage_offset() == kept.storage_offset() + start * kept.stride(0)
    )
    return same_place or torch.equal(kept[start : start + encodings.size(0)], encodings)


def _traced_shift(all_distances: Tensor) -> Tensor:
    """fairseq's ``rel_shift`` (without ``zero_triu``) as a traced graph runs it with one copy less:
    [i, j] = all_distances[i, T - 1 - i + j] sits T - 1 + i (2T - 2) + j into each head's flattened
    (T, 2T - 1) scores, so those from T - 1 on, read as rows of 2T - 2, start with the (B, H, T, T)
    result (no padded copy; a single frame's row step is 1)."""
    batch, heads, frames, width = all_distances.shape
    step = width - 1 + (frames == 1)  # sizes are ints in eager, 0-dim tensors while traced
    flat = all_distances.reshape(batch, heads, frames * width)[:, :, frames - 1 : frames - 1 + frames * step]
    return flat.reshape(batch, heads, frames, step)[..., :frames]

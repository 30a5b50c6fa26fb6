"""The chunk-causal pooling conformer encoder run on a stream, one chunk at a time (docs/streaming.md).

:class:`EncoderStream` takes filterbank frames in pieces of any size and returns encoder frames as
soon as a whole output chunk can be computed: exactly what one offline forward with the same chunk
mask computes for those frames (tests/test_streaming.py), because every layer sees the same frames:

- the Conv2d front end has no padding in time, so its output frame t depends on input frames
  [s t, s t + R) only (stride s, receptive field R): frames are computed as soon as those arrive;
- conformer blocks of a level run on whole level chunks (``chunk_size * 2**poolings_after``
  frames), attending over the cached keys and values of the visible earlier frames, with the last
  k - 1 inputs of the causal depthwise convolution carried over;
- max-pooling pairs never straddle a chunk (level chunks are even), so a pooled chunk is the next
  level's chunk;
- at the end of the stream the last, partial chunk runs as the offline forward's last chunk does.

Batch 1, evaluation only. Needs ``--causal-conv`` and a chunk size > 0.
"""

from typing import List, Optional

import torch
from torch import Tensor

from ..modules.chunking import level_chunk_size
from ..modules.inference_linear import apply_linear
from ..modules.pooling_conformer_encoder import PoolingConformerEncoder, max_pool_time
from .conformer_block import BlockCache

__all__ = ["EncoderStream"]


class EncoderStream:
    """A stream's encoder state: pending features, per-level pending frames, block caches.

    Args:
        encoder (PoolingConformerEncoder): chunk-causal (blocks with ``causal_conv``), in eval mode.
        chunk_size (int): output frames per chunk (> 0); the encoder's own when None.
    """

    def __init__(self, encoder: PoolingConformerEncoder, chunk_size: Optional[int] = None):
        if not all(getattr(block, "causal_conv", False) for block in encoder.blocks):
            raise ValueError("streaming needs a model trained with causal convolutions (--causal-conv)")
        chunk_size = encoder.chunk_size if chunk_size is None else chunk_size
        if chunk_size <= 0:
            raise ValueError("streaming needs a chunk: the model has none (--encoder-chunk-size), give one")
        self.encoder, self.chunk_size = encoder, chunk_size
        self.levels = self._levels(encoder)
        self.caches = [
            [BlockCache(self._visible_frames(poolings_after)) for _ in blocks]
            for blocks, poolings_after in self.levels
        ]
        self.features: Optional[Tensor] = None  # (n, F) input frames not yet consumed by the front end
        self.pending = [None] * len(self.levels)  # per level: (1, n, D) frames waiting for a whole chunk

    def _levels(self, encoder: PoolingConformerEncoder):
        """[(blocks, poolings after them)] per frame rate, first level first."""
        levels, blocks = [], []
        poolings_after = len(encoder.pooling_layer_ids)
        for layer_id, block in enumerate(encoder.blocks, start=1):
            blocks.append(block)
            if layer_id in encoder.pooling_layer_ids:
                levels.append((blocks, poolings_after))
                blocks, poolings_after = [], poolings_after - 1
        levels.append((blocks, poolings_after))
        return levels

    def _visible_frames(self, poolings_after: int) -> Optional[int]:
        left = self.encoder.left_chunks
        return None if left < 0 else left * level_chunk_size(self.chunk_size, poolings_after)

    @torch.no_grad()
    def accept_features(self, features: Tensor) -> Tensor:
        """(n, F) new filterbank frames -> (1, m, D) encoder frames completed by them (m may be 0)."""
        self.features = features if self.features is None else torch.cat([self.features, features])
        pending = self.pending[0].size(1) if self.pending[0] is not None else 0
        first_chunk = level_chunk_size(self.chunk_size, self.levels[0][1])
        if pending + self._front_end_frames() < first_chunk:
            return self._empty()  # no chunk completes yet: the front end waits (its frames are independent)
        return self._run(self._front_end(), final=False)

    @torch.no_grad()
    def finalize(self) -> Tensor:
        """The encoder frames of the last, partial chunk: (1, m, D)."""
        return self._run(self._front_end() if self.features is not None else None, final=True)

    def _front_end_frames(self) -> int:
        """Front-end frames the pending input makes."""
        return int(self.encoder.subsampler.output_lengths(torch.tensor([self.features.size(0)]))[0])

    def _front_end(self) -> Optional[Tensor]:
        """Front-end frames (1, n, D) of every input window now complete; consumed input is dropped."""
        subsampler = self.encoder.subsampler
        available = self.features.size(0)
        count = self._front_end_frames()
        if count <= 0:
            return None
        stride = 2 ** len(subsampler.kernel_sizes)
        frames, _ = subsampler(self.features.unsqueeze(0), torch.tensor([available]))
        frames = frames[:, :count]
        self.features = self.features[stride * count :]
        encoder = self.encoder
        return apply_linear(encoder.input_proj, frames * encoder.embed_scale)

    def _run(self, frames: Optional[Tensor], final: bool) -> Tensor:
        """Push front-end frames through the levels; returns the encoder frames completed."""
        outputs: List[Tensor] = []
        self._push(0, frames, final, outputs)
        return torch.cat(outputs, dim=1) if outputs else self._empty()

    def _push(self, level: int, frames: Optional[Tensor], final: bool, outputs: List[Tensor]) -> None:
        """Queue ``frames`` at ``level`` and run every chunk now whole (the rest too when ``final``)."""
        if frames is not None and frames.size(1):
            pending = self.pending[level]
            self.pending[level] = frames if pending is None else torch.cat([pending, frames], dim=1)
        blocks, poolings_after = self.levels[level]
        chunk = level_chunk_size(self.chunk_size, poolings_after)
        while self.pending[level] is not None and self.pending[level].size(1) >= (1 if final else chunk):
            pending = self.pending[level]
            frames, self.pending[level] = pending[:, :chunk], pending[:, chunk:]
            for block, cache in zip(blocks, self.caches[level], strict=True):
                frames = block.forward_chunk(frames, cache, self.encoder.pos_encoding)
            if level + 1 == len(self.levels):
                outputs.append(frames)
            else:
                pooled, _ = max_pool_time(frames, torch.tensor([frames.size(1)]))
                self._push(level + 1, pooled, final, outputs)
        if final and level + 1 < len(self.levels):
            self._push(level + 1, None, final, outputs)

    def _empty(self) -> Tensor:
        block = self.encoder.blocks[-1]
        weight = block.final_layer_norm.weight
        return weight.new_zeros(1, 0, weight.numel())

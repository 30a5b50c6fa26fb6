"""Chunk-causal context for streaming encoders (docs/streaming.md).

The encoder's output frames are cut into chunks of ``chunk_size`` frames; a frame sees every frame of
its own chunk and of the ``left_chunks`` chunks before it (all of them for -1), never a later chunk.
An encoder that pools over time has longer chunks before each pooling: with P poolings still to
come a level's chunk is ``chunk_size * 2**P`` frames, so pooling pairs never straddle a chunk
boundary and a chunk of the output is exactly the pooled chunks below it.

Dynamic chunk training (WeNet U2, Zhang et al. 2021) draws the chunk size per batch: full context
half of the time, otherwise a size from 1 to ``MAX_DYNAMIC_CHUNK`` output frames, so one model
decodes at any chunk size.
"""

from typing import Optional

import torch
from torch import Tensor

__all__ = ["FULL_CONTEXT", "MAX_DYNAMIC_CHUNK", "chunk_blocked_mask", "draw_chunk_size", "level_chunk_size"]

FULL_CONTEXT = 0  # chunk size meaning "no chunking"
MAX_DYNAMIC_CHUNK = 16  # output frames: 1.28 s at the paper's 80 ms frames
FULL_CONTEXT_PROBABILITY = 0.5


def level_chunk_size(chunk_size: int, poolings_after: int) -> int:
    """Frames per chunk at a level followed by ``poolings_after`` poolings (0: full context)."""
    return chunk_size * 2**poolings_after if chunk_size > 0 else FULL_CONTEXT


def chunk_blocked_mask(
    num_frames: int, chunk_size: int, left_chunks: int = -1, device: Optional[torch.device] = None
) -> Optional[Tensor]:
    """(T, T) bool mask, True where query frame i may not attend to key frame j; None for full context.

    Frame i is in chunk i // chunk_size and sees chunks [c - left_chunks, c] (all chunks <= c when
    ``left_chunks`` < 0). Example: T = 4, chunk 2, all left chunks ->
    [[F, F, T, T], [F, F, T, T], [F, F, F, F], [F, F, F, F]].

    Args:
        num_frames (int): T.
        chunk_size (int): frames per chunk at this level (0: full context).
        left_chunks (int): earlier chunks visible (-1: all).
    """
    if chunk_size <= 0:
        return None
    chunk = torch.arange(num_frames, device=device) // chunk_size
    query, key = chunk.unsqueeze(1), chunk.unsqueeze(0)
    blocked = key > query
    if left_chunks >= 0:
        blocked |= key < query - left_chunks
    return blocked


def draw_chunk_size() -> int:
    """A training batch's chunk size (output frames): 0 (full context) or 1..MAX_DYNAMIC_CHUNK.

    Drawn from torch's CPU generator, which fairseq seeds per update, so a resumed run draws the same.
    """
    if float(torch.rand(())) < FULL_CONTEXT_PROBABILITY:
        return FULL_CONTEXT
    return int(torch.randint(1, MAX_DYNAMIC_CHUNK + 1, ()))

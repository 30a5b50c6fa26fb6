"""fairseq's relative positional encoding, made safe to share between decoding threads."""

import math
import threading

import torch
from fairseq.modules import RelPositionalEncoding
from torch import Tensor

__all__ = ["ThreadSafeRelPositionalEncoding"]


class ThreadSafeRelPositionalEncoding(RelPositionalEncoding):
    """``RelPositionalEncoding`` whose table grows under a lock and is read once per call.

    fairseq's forward grows the shared table for a long input and then reads ``self.pe`` twice: a
    thread decoding a shorter input at the same time can replace the table in between, and the first
    thread slices a table too short for it (a server decodes requests in threads over one model).
    The encodings are fairseq's. Traced for a graph export, they are computed from the input's length
    instead of sliced from the table, so the graph holds no table and takes any length.
    """

    _growing = threading.Lock()

    def forward(self, x: Tensor) -> Tensor:
        """(T, B, C) -> (2T - 1, 1, C) encodings of the distances T - 1 .. -(T - 1)."""
        if torch.jit.is_tracing():
            return self._computed(x)
        length, table = x.size(0), self.pe
        if table.size(1) < 2 * length - 1 or table.dtype != x.dtype or table.device != x.device:
            with self._growing:  # extend_pe never shrinks the table it finds
                self.extend_pe(x.transpose(0, 1))
                table = self.pe
        middle = table.size(1) // 2
        return table[:, middle - length + 1 : middle + length].transpose(0, 1)

    def _computed(self, x: Tensor) -> Tensor:
        """What ``forward`` slices from the table: [sin(r w), cos(r w)] interleaved, r = T - 1 .. -(T - 1)."""
        ones = torch.ones_like(x[:, 0, 0], dtype=torch.float32)  # (T,): traces with the length
        length = ones.sum()
        distance = length - ones.repeat(2)[1:].cumsum(0)  # T - 1, T - 2, ..., -(T - 1)
        div_term = torch.exp(
            torch.arange(0, self.d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / self.d_model)
        )
        angles = distance.unsqueeze(1) * div_term  # (2T - 1, C / 2)
        encodings = torch.stack([torch.sin(angles), torch.cos(angles)], dim=2).flatten(1)
        return encodings.to(x.dtype).unsqueeze(1)

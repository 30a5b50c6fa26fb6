"""fairseq's relative positional encoding, made safe to share between decoding threads."""

import threading

from fairseq.modules import RelPositionalEncoding
from torch import Tensor

__all__ = ["ThreadSafeRelPositionalEncoding"]


class ThreadSafeRelPositionalEncoding(RelPositionalEncoding):
    """``RelPositionalEncoding`` whose table grows under a lock and is read once per call.

    fairseq's forward grows the shared table for a long input and then reads ``self.pe`` twice: a
    thread decoding a shorter input at the same time can replace the table in between, and the first
    thread slices a table too short for it (a server decodes requests in threads over one model).
    The encodings are fairseq's.
    """

    _growing = threading.Lock()

    def forward(self, x: Tensor) -> Tensor:
        """(T, B, C) -> (2T - 1, 1, C) encodings of the distances T - 1 .. -(T - 1)."""
        length, table = x.size(0), self.pe
        if table.size(1) < 2 * length - 1 or table.dtype != x.dtype or table.device != x.device:
            with self._growing:  # extend_pe never shrinks the table it finds
                self.extend_pe(x.transpose(0, 1))
                table = self.pe
        middle = table.size(1) // 2
        return table[:, middle - length + 1 : middle + length].transpose(0, 1)

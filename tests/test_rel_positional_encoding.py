"""The thread-safe relative positional encoding gives fairseq's encodings, also while other threads
grow its table."""

import threading

import pytest
import torch
from fairseq.modules import RelPositionalEncoding

from cif_plugin.models.rel_positional_encoding import ThreadSafeRelPositionalEncoding


def _fairseq(length: int, dim: int = 16) -> torch.Tensor:
    return RelPositionalEncoding(1, dim)(torch.zeros(length, 1, dim))


def test_the_encodings_are_fairseqs_within_and_beyond_the_table():
    encoding = ThreadSafeRelPositionalEncoding(8, 16)
    for length in (1, 5, 8, 20, 3):
        assert torch.equal(encoding(torch.zeros(length, 2, 16)), _fairseq(length))
    assert encoding(torch.zeros(4, 1, 16, dtype=torch.float64)).dtype == torch.float64


def test_threads_growing_the_table_each_get_their_own_length():
    """Growing lengths in several threads at once: fairseq's module can hand a thread a slice of
    another thread's shorter table; this one never does."""
    encoding = ThreadSafeRelPositionalEncoding(1, 16)
    lengths = list(range(2, 400, 7))
    expected = {length: _fairseq(length) for length in lengths}
    failures = []

    def decode(offset: int):
        for length in lengths[offset:] + lengths[:offset]:
            if not torch.equal(encoding(torch.zeros(length, 1, 16)), expected[length]):
                failures.append(length)

    threads = [threading.Thread(target=decode, args=(offset,)) for offset in range(0, 48, 6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures


@pytest.mark.parametrize("length", [1, 7, 150, 700])
def test_encodings_computed_for_a_traced_graph_equal_the_table(length):
    """The tableless encodings a graph export traces equal what fairseq's table gives, also past
    the table's initial size."""
    encoding = ThreadSafeRelPositionalEncoding(200, 32)
    x = torch.randn(length, 2, 32)
    assert torch.equal(encoding._computed(x), encoding(x))

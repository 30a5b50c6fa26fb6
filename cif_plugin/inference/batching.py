"""How both recognisers (PyTorch and onnxruntime) group inputs: windows of inputs held in memory, and
batches of similar length under a frame budget (plain Python)."""

from typing import Callable, Iterable, Iterator, List, Sequence, Tuple, TypeVar

__all__ = ["in_windows", "length_sorted_batches"]

Item = TypeVar("Item")


def in_windows(inputs: Iterable[Item], window: int) -> Iterator[List[Tuple[int, Item]]]:
    """(index, input) pairs, ``window`` at a time."""
    pending: List[Tuple[int, Item]] = []
    for index, item in enumerate(inputs):
        pending.append((index, item))
        if len(pending) == window:
            yield pending
            pending = []
    if pending:
        yield pending


def length_sorted_batches(
    items: Sequence[Item], length: Callable[[Item], int], batch_size: int, max_batch_frames: int
) -> Iterator[List[Item]]:
    """Items sorted by ``length``, in batches of at most ``batch_size`` items and ``max_batch_frames``
    frames, padding included."""
    batch: List[Item] = []
    for item in sorted(items, key=length):
        longest = length(item)  # sorted: the newest is the longest
        if batch and (len(batch) == batch_size or longest * (len(batch) + 1) > max_batch_frames):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch

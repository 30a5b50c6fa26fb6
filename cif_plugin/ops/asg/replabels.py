"""wav2letter's replabels: without a blank, ASG cannot tell "a a" from "a", so a run of a repeated
label is written as the label followed by a replabel symbol "k" standing for k repetitions
(k <= max_replabel); longer runs start again ("a a a a" with max 2 -> "a 2 a")."""

from typing import List, Sequence

__all__ = ["replabel_ids", "pack_replabels", "unpack_replabels"]


def replabel_ids(dictionary, max_replabel: int) -> List[int]:
    """Indices of the symbols "1" .. "max_replabel" in a fairseq dictionary (an error names the missing)."""
    missing = [str(k) for k in range(1, max_replabel + 1) if str(k) not in dictionary.indices]
    if missing:
        raise ValueError(
            f"--max-replabel {max_replabel} needs the symbols {missing} in the dictionary: add lines "
            f"'{missing[0]} 1' ... to dict.txt (before training), or pass --max-replabel 0"
        )
    return [dictionary.index(str(k)) for k in range(1, max_replabel + 1)]


def pack_replabels(tokens: Sequence[int], replabels: Sequence[int]) -> List[int]:
    """Replace repetitions by replabel ids; ``replabels[k - 1]`` stands for k repetitions."""
    packed, previous, repeats = [], None, 0
    for token in tokens:
        if token == previous and repeats < len(replabels):
            repeats += 1
            continue
        if repeats:
            packed.append(replabels[repeats - 1])
        packed.append(token)
        previous, repeats = token, 0
    if repeats:
        packed.append(replabels[repeats - 1])
    return packed


def unpack_replabels(tokens: Sequence[int], replabels: Sequence[int]) -> List[int]:
    """Inverse of :func:`pack_replabels`; a replabel with nothing to repeat is dropped."""
    count = {replabel: k for k, replabel in enumerate(replabels, start=1)}
    unpacked, previous = [], None
    for token in tokens:
        if token in count:
            if previous is not None:
                unpacked.extend([previous] * count[token])
            previous = None
        else:
            unpacked.append(token)
            previous = token
    return unpacked

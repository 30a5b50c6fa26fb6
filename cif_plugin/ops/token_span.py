"""A decoded token and the encoder frames it occupies: what every output topology's search gives, and
the frame-path rules of CTC and ASG that make tokens of frame labels (plain Python: the torch-free
ONNX runtime reads them too)."""

from dataclasses import dataclass
from typing import List, Sequence

__all__ = ["TokenSpan", "asg_token_spans", "collapse_repeats", "merge_frame_labels"]


@dataclass(frozen=True)
class TokenSpan:
    """One emitted label and its encoder frames, ``start`` <= frame < ``end``.

    Multiply by the model's seconds per encoder frame for times (80 ms for the paper model).
    """

    label: int
    start: int
    end: int


def merge_frame_labels(path: Sequence[int], blank: int) -> List[TokenSpan]:
    """Spans of a CTC frame path: runs of one label are one token, blanks separate tokens.

    Example: path [0, 3, 3, 0, 3, 5, 5] with blank 0 -> (3, 1, 3), (3, 4, 5), (5, 5, 7).
    """
    spans, start = [], None
    for t, label in enumerate(path):
        if start is not None and label != path[start]:
            spans.append(TokenSpan(path[start], start, t))
            start = None
        if start is None and label != blank:
            start = t
    if start is not None:
        spans.append(TokenSpan(path[start], start, len(path)))
    return spans


def collapse_repeats(path: List[int]) -> List[int]:
    """Frame labels -> tokens: consecutive equal labels are one token."""
    return [label for t, label in enumerate(path) if t == 0 or label != path[t - 1]]


def asg_token_spans(path: Sequence[int], replabels: Sequence[int]) -> List[TokenSpan]:
    """Tokens of a frame path with their frames: each run of one label is a token, and a replabel
    run standing for k repetitions of the token before it gives k tokens sharing its frames evenly
    (the tokens are those of ``unpack_replabels(collapse_repeats(path))``; when k exceeds the run's
    frames some of them are empty).

    Example: path [5, 5, 7, 1, 1] with replabels [1] ("1" = one repetition) -> (5, 0, 2),
    (7, 2, 3), (7, 3, 5).
    """
    count = {replabel: k for k, replabel in enumerate(replabels, start=1)}
    spans, previous, start = [], None, 0
    for t in range(1, len(path) + 1):
        if t < len(path) and path[t] == path[start]:
            continue
        label = path[start]
        if label in count:
            if previous is not None:
                repeats = count[label]
                for k in range(repeats):
                    first = start + (t - start) * k // repeats
                    spans.append(TokenSpan(previous, first, start + (t - start) * (k + 1) // repeats))
            previous = None
        else:
            spans.append(TokenSpan(label, start, t))
            previous = label
        start = t
    return spans

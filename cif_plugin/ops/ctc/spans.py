"""CTC token spans on the encoder frame clock, as greedy decoding and forced alignment give them."""

from typing import List, Sequence

from ..token_span import TokenSpan

__all__ = ["TokenSpan", "merge_frame_labels"]


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

"""CTC token spans on the encoder frame clock, as greedy decoding and forced alignment give them."""

from ..token_span import TokenSpan, merge_frame_labels

__all__ = ["TokenSpan", "merge_frame_labels"]

"""A decoded token and the encoder frames it occupies: what every output topology's search gives."""

from dataclasses import dataclass

__all__ = ["TokenSpan"]


@dataclass(frozen=True)
class TokenSpan:
    """One emitted label and its encoder frames, ``start`` <= frame < ``end``.

    Multiply by the model's seconds per encoder frame for times (80 ms for the paper model).
    """

    label: int
    start: int
    end: int

"""Hotword recall, precision and F1 of decoded text (docs/hotwords.md).

For each utterance and each phrase h of the hotword list, with r(h) its occurrences in the
reference and p(h) in the hypothesis (non-overlapping, whitespace ignored), a hit is min(r(h), p(h)):

    recall = sum hits / sum r,  precision = sum hits / sum p,  F1 = 2 PR / (P + R)

so a name written with the wrong characters is a miss, and a hotword written where it was not said
is a false alarm. This is how FunASR and WeNet report contextual biasing.
"""

from dataclasses import dataclass
from typing import Dict, Iterable, Sequence

__all__ = ["HotwordCounts", "count_hotwords", "has_hotword"]


@dataclass
class HotwordCounts:
    """Hotword occurrences in references, in hypotheses, and hits (min of the two per utterance)."""

    in_references: int = 0
    in_hypotheses: int = 0
    hits: int = 0

    @property
    def recall(self) -> float:
        return self.hits / self.in_references if self.in_references else 0.0

    @property
    def precision(self) -> float:
        return self.hits / self.in_hypotheses if self.in_hypotheses else 0.0

    @property
    def f1(self) -> float:
        total = self.recall + self.precision
        return 2 * self.recall * self.precision / total if total else 0.0


def _plain(text: str) -> str:
    return "".join(text.split())


def count_hotwords(
    references: Dict[str, str], hypotheses: Dict[str, str], hotwords: Iterable[str]
) -> HotwordCounts:
    """Counts over the utterances of ``references`` (by id; each needs a hypothesis)."""
    phrases: Sequence[str] = sorted({_plain(h) for h in hotwords if _plain(h)})
    counts = HotwordCounts()
    for utt_id, reference in references.items():
        reference, hypothesis = _plain(reference), _plain(hypotheses[utt_id])
        for phrase in phrases:
            said, written = reference.count(phrase), hypothesis.count(phrase)
            counts.in_references += said
            counts.in_hypotheses += written
            counts.hits += min(said, written)
    return counts


def has_hotword(text: str, hotwords: Iterable[str]) -> bool:
    """Whether ``text`` says any of ``hotwords``."""
    text = _plain(text)
    return any(_plain(h) and _plain(h) in text for h in hotwords)

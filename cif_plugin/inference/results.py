"""What the recogniser returns: one :class:`Transcript` per input, tokens with times in seconds."""

from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["TokenTiming", "Transcript", "assemble_transcripts", "symbols_to_text"]


@dataclass
class TokenTiming:
    """One recognised token and where it is, in seconds from the start of its input."""

    token: str
    start: float
    end: float


@dataclass
class Transcript:
    """The result of one input.

    Attributes:
        name (str): the input's name (its path, its ``wav.scp`` id, or the name it was given).
        text (str): the tokens joined (characters without spaces; sentencepiece pieces decoded).
        tokens (list of TokenTiming): every token with its start and end time.
        score (float): the search's score of the best hypothesis (natural log; summed over the
            segments of a long recording).
        duration (float): seconds of audio.
        error (str, optional): why the input could not be transcribed; then text is empty.
    """

    name: str
    text: str = ""
    tokens: List[TokenTiming] = field(default_factory=list)
    score: float = 0.0
    duration: float = 0.0
    error: Optional[str] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> Dict:
        return asdict(self)


def symbols_to_text(symbols: List[str], sentencepiece: bool) -> str:
    """Decoded symbols as text: characters joined, or sentencepiece pieces decoded as fairseq's
    ``post_process(..., "sentencepiece")`` decodes them (word starts are U+2581)."""
    if not sentencepiece:
        return "".join(symbols)
    return "".join(symbols).replace("\u2581", " ").strip()


def assemble_transcripts(
    transcripts: List[Transcript],
    decoded: Sequence[Tuple[int, float, List[str], List[Tuple[float, float]], float]],
    text_of: Callable[[List[str]], str],
) -> None:
    """Fill each input's transcript from its decoded segments, given as (input index, offset
    seconds, symbols, (start, end) times within the segment, score) in any order: symbols joined
    and token times shifted onto the input's clock in offset order, scores summed."""
    texts: List[List[str]] = [[] for _ in transcripts]
    for index, offset, symbols, times, score in sorted(decoded, key=lambda item: (item[0], item[1])):
        transcript = transcripts[index]
        texts[index] += symbols
        transcript.score += score
        transcript.tokens += [
            TokenTiming(s, round(offset + a, 3), round(offset + b, 3))
            for s, (a, b) in zip(symbols, times, strict=True)
        ]
    for transcript, symbols in zip(transcripts, texts, strict=True):
        if transcript.ok:
            transcript.text = text_of(symbols)
            transcript.score = round(transcript.score, 4)

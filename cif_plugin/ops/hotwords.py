"""Hotword lists: read from a file or given as phrases, encoded with the ASR dictionary into a
:class:`ContextGraph` (docs/hotwords.md).

A hotword file has one phrase a line, optionally followed by whitespace and its own per-token score
(``周伟 3.0``); blank lines and lines starting with ``#`` are skipped. Phrases are written in the
dictionary's characters (spaces are ignored: AISHELL-1 and the demo use character dictionaries). A
phrase with a character the dictionary lacks can never be decoded: it is reported (logged with its
file and line) and left out, never silently dropped.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from ..decoding_defaults import DEFAULT_HOTWORD_SCORE
from .context_graph import ContextGraph

__all__ = [
    "NO_HOTWORDS_WITH_VITERBI",
    "Hotword",
    "HotwordSource",
    "build_context_graph",
    "encode_hotwords",
    "parse_hotword_lines",
    "read_hotwords",
]

logger = logging.getLogger(__name__)

NO_HOTWORDS_WITH_VITERBI = "hotword biasing works with CIF and CTC models; ASG models decode with Viterbi"


@dataclass
class Hotword:
    """One phrase of a hotword list, with its own score (None: the list's default) and where it came from."""

    text: str
    score: Optional[float] = None
    origin: str = ""


HotwordSource = Union[str, Path, Sequence[Union[str, Tuple[str, float], Hotword]]]


def _parse_line(line: str, origin: str) -> Optional[Hotword]:
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    parts = text.rsplit(maxsplit=1)
    if len(parts) == 2:
        try:
            return Hotword(parts[0], float(parts[1]), origin)
        except ValueError:
            pass
    return Hotword(text, None, origin)


def parse_hotword_lines(text: str, origin: str) -> List[Hotword]:
    """The phrases of hotword-file text (one a line, optional score, ``#`` comments), each marked
    with ``origin`` and its line number."""
    hotwords = [_parse_line(line, f"{origin}:{n}") for n, line in enumerate(text.splitlines(), 1)]
    return [hotword for hotword in hotwords if hotword is not None]


def read_hotwords(source: HotwordSource) -> List[Hotword]:
    """The phrases of a hotword file (path), or of a list of phrases / (phrase, score) pairs.

    Raises:
        FileNotFoundError: no such file. ValueError: a score that is not positive (file and line named).
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"hotword file {path} does not exist")
        hotwords = parse_hotword_lines(path.read_text(encoding="utf-8"), str(path))
    else:
        hotwords = []
        for n, item in enumerate(source, 1):
            if isinstance(item, Hotword):
                hotwords.append(item)
            elif isinstance(item, str):
                hotwords.append(Hotword(item.strip(), None, f"hotword {n}"))
            else:
                hotwords.append(Hotword(str(item[0]).strip(), float(item[1]), f"hotword {n}"))
    hotwords = [h for h in hotwords if h is not None and h.text]
    for hotword in hotwords:
        if hotword.score is not None and not hotword.score > 0:
            raise ValueError(
                f"{hotword.origin}: hotword {hotword.text!r} has score {hotword.score}; scores must be > 0"
            )
    return hotwords


@dataclass
class EncodedHotwords:
    """Token ids and scores of the phrases kept, and the phrases left out with their unknown symbols."""

    phrases: List[Tuple[List[int], float]] = field(default_factory=list)
    skipped: List[Tuple[Hotword, str]] = field(default_factory=list)


def encode_hotwords(hotwords: Iterable[Hotword], dictionary, default_score: float) -> EncodedHotwords:
    """Each phrase's characters as dictionary indices (spaces dropped); phrases with characters
    outside the dictionary are reported and left out."""
    encoded = EncodedHotwords()
    for hotword in hotwords:
        symbols = list("".join(hotword.text.split()))
        unknown = "".join(dict.fromkeys(s for s in symbols if dictionary.index(s) == dictionary.unk()))
        if unknown:
            logger.warning(
                f"{hotword.origin}: hotword {hotword.text!r} left out: {unknown!r} not in the dictionary"
            )
            encoded.skipped.append((hotword, unknown))
            continue
        score = hotword.score if hotword.score is not None else default_score
        encoded.phrases.append(([dictionary.index(s) for s in symbols], score))
    return encoded


def build_context_graph(
    source: Optional[HotwordSource], dictionary, default_score: float = DEFAULT_HOTWORD_SCORE
) -> Optional[ContextGraph]:
    """The context graph of a hotword file or list, or None when there is nothing to bias towards
    (no source, an empty list, or every phrase left out)."""
    if source is None:
        return None
    if not default_score > 0:
        raise ValueError(f"--hotword-score {default_score}: must be > 0")
    encoded = encode_hotwords(read_hotwords(source), dictionary, default_score)
    if not encoded.phrases:
        if encoded.skipped:
            logger.warning("no hotword is left to bias towards: decoding without biasing")
        return None
    logger.info(f"hotword biasing: {len(encoded.phrases)} phrases, default score {default_score} per token")
    return ContextGraph(encoded.phrases)

"""Transcripts as text, JSON, JSON lines, SRT subtitles, CTM or TSV.

- ``text``: ``<name>\\t<text>`` per input;
- ``json`` (a list) and ``jsonl`` (one object per line): every field of :class:`Transcript`, failed
  inputs included with their ``error``;
- ``srt``: subtitle cues of at most ``MAX_CUE_TOKENS`` tokens, a new cue after a pause of
  ``CUE_PAUSE_SECONDS``; the cues of several inputs follow each other, numbered on, each input's
  times on its own clock;
- ``ctm``: ``<name> 1 <start> <duration> <token> <confidence>`` per token (NIST CTM; confidence 1);
- ``tsv``: a header, then ``name, start, end, token`` per token.

Only ``json`` and ``jsonl`` hold failed inputs; the command line reports them on stderr as well.
"""

import json
from typing import Callable, Dict, List, Sequence

from .results import TokenTiming, Transcript

__all__ = ["FORMATS", "format_transcripts"]

MAX_CUE_TOKENS = 20
CUE_PAUSE_SECONDS = 0.5


def _text(transcripts: Sequence[Transcript]) -> str:
    return "".join(f"{t.name}\t{t.text}\n" for t in transcripts if t.ok)


def _json(transcripts: Sequence[Transcript]) -> str:
    return json.dumps([t.to_dict() for t in transcripts], ensure_ascii=False, indent=2) + "\n"


def _jsonl(transcripts: Sequence[Transcript]) -> str:
    return "".join(json.dumps(t.to_dict(), ensure_ascii=False) + "\n" for t in transcripts)


def _cues(tokens: Sequence[TokenTiming]) -> List[List[TokenTiming]]:
    cues: List[List[TokenTiming]] = []
    for token in tokens:
        if not cues or len(cues[-1]) == MAX_CUE_TOKENS or token.start - cues[-1][-1].end >= CUE_PAUSE_SECONDS:
            cues.append([])
        cues[-1].append(token)
    return cues


def _srt_time(seconds: float) -> str:
    milliseconds = int(round(seconds * 1000))
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d},{rest % 1000:03d}"


def _srt(transcripts: Sequence[Transcript]) -> str:
    blocks, number = [], 0
    for transcript in transcripts:
        if not transcript.ok:
            continue
        joiner = "" if "".join(t.token for t in transcript.tokens) == transcript.text else " "
        for cue in _cues(transcript.tokens):
            number += 1
            span = f"{_srt_time(cue[0].start)} --> {_srt_time(cue[-1].end)}"
            blocks.append(f"{number}\n{span}\n{joiner.join(t.token for t in cue)}\n")
    return "\n".join(blocks)


def _ctm(transcripts: Sequence[Transcript]) -> str:
    return "".join(
        f"{t.name} 1 {token.start:.3f} {token.end - token.start:.3f} {token.token} 1.00\n"
        for t in transcripts
        if t.ok
        for token in t.tokens
    )


def _tsv(transcripts: Sequence[Transcript]) -> str:
    rows = ["name\tstart\tend\ttoken"]
    rows += [
        f"{t.name}\t{x.start:.3f}\t{x.end:.3f}\t{x.token}" for t in transcripts if t.ok for x in t.tokens
    ]
    return "\n".join(rows) + "\n"


FORMATS: Dict[str, Callable[[Sequence[Transcript]], str]] = {
    "text": _text,
    "json": _json,
    "jsonl": _jsonl,
    "srt": _srt,
    "ctm": _ctm,
    "tsv": _tsv,
}


def format_transcripts(transcripts: Sequence[Transcript], output_format: str) -> str:
    if output_format not in FORMATS:
        raise ValueError(f"unknown format {output_format!r}: one of {', '.join(FORMATS)}")
    return FORMATS[output_format](transcripts)

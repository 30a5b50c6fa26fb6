"""The ``/v1/stream`` websocket protocol: the header, the audio messages, the close codes
(docs/server.md has the whole exchange).

Client: one JSON header ``{"sample_rate": 16000, "encoding": "pcm_s16le", ...}``, then binary
messages of audio, then ``{"type": "end"}``. Server: ``ready``, a ``partial`` each time tokens are
emitted, one ``final``, then a normal close; on a refusal an ``error`` message, then the close code
below.
"""

import json
from dataclasses import dataclass
from typing import List, Optional, Union

import numpy as np

from ...tasks.fbank_features import SAMPLE_RATE
from .limits import ServerLimits

__all__ = [
    "ENCODINGS",
    "CloseCode",
    "StreamHeader",
    "StreamRefused",
    "decode_audio",
    "is_end_message",
    "parse_header",
]

# sample format -> numpy dtype and the scale to [-1, 1]
ENCODINGS = {"pcm_s16le": (np.dtype("<i2"), 1 / 32768), "float32": (np.dtype("<f4"), 1.0)}


class CloseCode:
    """Websocket close codes of the protocol (RFC 6455, section 7.4.1)."""

    NORMAL = 1000  # the final result was sent
    UNSUPPORTED = (
        1003  # a header the server cannot serve (sample rate, encoding), or a model that cannot stream
    )
    INVALID = 1007  # malformed JSON, audio bytes that are not whole samples, non-finite samples
    POLICY = 1008  # idle for too long, a beam over the limit, audio before the header
    TOO_BIG = 1009  # a message or a stream over its limit
    INTERNAL = 1011  # decoding failed
    TRY_LATER = 1013  # every stream slot is taken


class StreamRefused(Exception):
    """A stream the server ends: the close ``code`` and the message sent before it."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class StreamHeader:
    """What a client declares before its audio.

    Attributes:
        sample_rate (int): must be 16000 (the page resamples in the browser).
        encoding (str): ``pcm_s16le`` (16-bit little-endian) or ``float32`` (little-endian, [-1, 1]).
        beam (int, optional): beam size for this stream (default: the server's).
        hotwords (list, optional): phrases, or [phrase, score] pairs, to bias the search towards.
        hotword_score (float, optional): per-token bonus of a hotword without its own score.
        chunk_ms (int, optional): chunk length (default: the model's).
    """

    sample_rate: int = SAMPLE_RATE
    encoding: str = "pcm_s16le"
    beam: Optional[int] = None
    hotwords: Optional[List[Union[str, List]]] = None
    hotword_score: Optional[float] = None
    chunk_ms: Optional[int] = None


def _load_json(text: str) -> dict:
    try:
        message = json.loads(text)
    except json.JSONDecodeError as error:
        raise StreamRefused(CloseCode.INVALID, f"the message is not JSON: {error}") from None
    if not isinstance(message, dict):
        raise StreamRefused(CloseCode.INVALID, "a text message must be a JSON object")
    return message


def _is_hotword(item) -> bool:
    if isinstance(item, str):
        return True
    return (
        isinstance(item, list)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], (int, float))
    )


def parse_header(text: Optional[str], limits: ServerLimits) -> StreamHeader:
    """The first message of a stream (None: it was binary) -> its header, or StreamRefused."""
    if text is None:
        raise StreamRefused(CloseCode.POLICY, "send the JSON header before any audio")
    message = _load_json(text)
    fields = set(StreamHeader.__dataclass_fields__)
    unknown = sorted(set(message) - fields - {"type"})
    if unknown:
        raise StreamRefused(CloseCode.UNSUPPORTED, f"unknown header field(s): {', '.join(unknown)}")
    header = StreamHeader(**{key: value for key, value in message.items() if key in fields})
    if header.sample_rate != SAMPLE_RATE:
        raise StreamRefused(
            CloseCode.UNSUPPORTED,
            f"sample_rate {header.sample_rate}: streams are {SAMPLE_RATE} Hz (resample first)",
        )
    if header.encoding not in ENCODINGS:
        raise StreamRefused(
            CloseCode.UNSUPPORTED, f"encoding {header.encoding!r}: use one of {', '.join(ENCODINGS)}"
        )
    if header.beam is not None and not (isinstance(header.beam, int) and 1 <= header.beam <= limits.max_beam):
        raise StreamRefused(CloseCode.POLICY, f"beam {header.beam!r}: an integer from 1 to {limits.max_beam}")
    if header.hotwords is not None and not (
        isinstance(header.hotwords, list) and all(map(_is_hotword, header.hotwords))
    ):
        raise StreamRefused(CloseCode.INVALID, 'hotwords: a list of phrases or ["phrase", score] pairs')
    return header


def is_end_message(text: str) -> bool:
    """True for ``{"type": "end"}``; StreamRefused for any other text message."""
    message = _load_json(text)
    if message.get("type") != "end":
        raise StreamRefused(
            CloseCode.UNSUPPORTED, f'unknown message {text[:100]!r}: expected {{"type": "end"}}'
        )
    return True


def decode_audio(data: bytes, encoding: str) -> np.ndarray:
    """A binary message -> (n,) float32 samples in [-1, 1], or StreamRefused."""
    dtype, scale = ENCODINGS[encoding]
    if len(data) % dtype.itemsize:
        raise StreamRefused(
            CloseCode.INVALID,
            f"{len(data)} bytes is not a whole number of {encoding} samples ({dtype.itemsize} bytes)",
        )
    samples = np.frombuffer(data, dtype=dtype).astype(np.float32) * np.float32(scale)
    if not np.isfinite(samples).all():
        raise StreamRefused(CloseCode.INVALID, "the audio holds non-finite samples")
    return samples


def token_records(tokens) -> List[dict]:
    """Streamed tokens as JSON objects: token, start, end, emitted_at."""
    return [{"token": t.token, "start": t.start, "end": t.end, "emitted_at": t.emitted_at} for t in tokens]

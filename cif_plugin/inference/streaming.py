"""Streaming recognition: audio in pieces, tokens out as soon as they are decided (docs/streaming.md).

    session = recognizer.stream(chunk_ms=640)
    for piece in pieces:                         # 16 kHz float samples, any length
        for token in session.accept_waveform(piece):
            print(token.token, token.start, token.emitted_at)
    session.finalize()
    print(session.transcript.text)

A chunk-causal model (``--encoder-chunk-size``, ``--causal-conv``) runs its encoder one chunk at a
time (``EncoderStream``). A CIF model then integrates the chunk's weights and decodes each token the
moment its CIF fires: the decoder has no cross-attention, so token i needs only the CIF vectors up to
i and the tokens before it. Greedy search emits each token for good; beam search advances its
hypotheses on each fire and reports the current best (it may still change until ``finalize``). A CTC
model emits the labels of its best path as the frames arrive (greedy), or runs prefix beam search
chunk by chunk (beam, LM fusion, hotwords). What a session returns equals one
offline decode of the whole audio with the same chunk size (tests/test_streaming.py).
"""

from dataclasses import dataclass
from typing import List, Optional

import numpy as np
import torch
from torch import Tensor

from ..generation import CifGenerator, CtcGenerator
from ..generation.cif_search import CifSearch
from ..models.streaming_encoder import EncoderStream
from ..modules.integrate_and_fire import integrate_and_fire
from ..ops.ctc import CtcPrefixSearch, ctc_blank_index, ctc_forced_align
from ..ops.ctc.spans import merge_frame_labels
from ..tasks.fbank_features import FRAME_SHIFT_SECONDS, SAMPLE_RATE, WINDOW_SAMPLES
from .results import TokenTiming, Transcript
from .streaming_features import StreamingFbank
from .timestamps import cif_token_times, span_times

__all__ = ["StreamedToken", "StreamingSession"]


@dataclass
class StreamedToken:
    """A token as a stream emits it: its times in the audio and how much audio had arrived then.

    Attributes:
        token (str): the symbol. start, end (float): seconds from the start of the stream.
        emitted_at (float): seconds of audio received when the token was emitted.
    """

    token: str
    start: float
    end: float
    emitted_at: float


class StreamingSession:
    """One stream through a :class:`~cif_plugin.inference.Recognizer` (use ``recognizer.stream``).

    Args:
        recognizer (Recognizer): a chunk-causal CIF or CTC model with its decoding options.
        chunk_ms (int, optional): chunk length in milliseconds, a multiple of the model's frame
            (80 ms for the paper's architectures); default: the model's ``--encoder-chunk-size``.
    """

    def __init__(self, recognizer, chunk_ms: Optional[int] = None):
        model = recognizer.model
        self.recognizer, self.dictionary = recognizer, recognizer.dictionary
        self.frame_seconds = recognizer.frame_seconds
        chunk_size = model.encoder.chunk_size if chunk_ms is None else self._chunk_frames(chunk_ms)
        self.encoder = EncoderStream(model.encoder, chunk_size)
        self.chunk_size = self.encoder.chunk_size
        self.fbank = StreamingFbank(recognizer.features.transforms)
        generator = recognizer.generator
        if isinstance(generator, CifGenerator) and not generator.nar:
            self.search = _CifStreamSearch(model, generator)
        elif isinstance(generator, CtcGenerator) and generator.greedy:
            self.search = _CtcStreamSearch(model, ctc_blank_index(self.dictionary))
        elif isinstance(generator, CtcGenerator):
            self.search = _CtcPrefixStreamSearch(model, generator)
        else:
            raise ValueError(
                "streaming decodes CIF models with an autoregressive decoder and CTC models; "
                f"not {type(model).__name__} ({type(generator).__name__})"
            )
        self.feature_frames = 0
        self.emitted: List[StreamedToken] = []
        self.finished = False

    def _chunk_frames(self, chunk_ms: int) -> int:
        frames = chunk_ms / (self.frame_seconds * 1000)
        if chunk_ms <= 0 or abs(frames - round(frames)) > 1e-6:
            raise ValueError(
                f"chunk of {chunk_ms} ms is not a positive multiple of the model's "
                f"{self.frame_seconds * 1000:g} ms frames"
            )
        return round(frames)

    @property
    def seconds(self) -> float:
        """Audio received so far (features: the span of their windows)."""
        if self.fbank.samples_seen:
            return self.fbank.seconds
        if not self.feature_frames:
            return 0.0
        return (self.feature_frames - 1) * FRAME_SHIFT_SECONDS + WINDOW_SAMPLES / SAMPLE_RATE

    def accept_waveform(self, samples, sample_rate: int = SAMPLE_RATE) -> List[StreamedToken]:
        """Feed (n,) float samples in [-1, 1]; returns the tokens emitted because of them."""
        self._check_open()
        return self._accept(self.fbank.accept(samples, sample_rate))

    def accept_features(self, features) -> List[StreamedToken]:
        """Feed (n, 80) input frames the model's transforms already ran on (instead of audio)."""
        self._check_open()
        return self._accept(torch.as_tensor(np.asarray(features, dtype=np.float32)))

    def finalize(self) -> List[StreamedToken]:
        """End of stream: the last partial chunk and the CIF tail; returns the last tokens."""
        self._check_open()
        self.finished = True
        frames = self.encoder.finalize()
        return self._emit(self.search.accept(frames, self.chunk_size, final=True))

    @property
    def cif_vectors(self) -> Optional[Tensor]:
        """(1, N, C) the CIF vectors fired so far (CIF models; None for CTC), for tests and plots."""
        return getattr(self.search, "vectors", None)

    @property
    def transcript(self) -> Transcript:
        """The current best result (final after :meth:`finalize`)."""
        labels, times = self.search.best(self.frame_seconds, self.seconds)
        symbols = [self.dictionary[label] for label in labels]
        tokens = [TokenTiming(symbol, *time) for symbol, time in zip(symbols, times, strict=True)]
        text = self.recognizer.text_of(symbols)
        return Transcript("stream", text, tokens, duration=round(self.seconds, 3))

    def _check_open(self) -> None:
        if self.finished:
            raise RuntimeError("this stream was finalized: start a new session")

    def _accept(self, features: Tensor) -> List[StreamedToken]:
        self.feature_frames += features.size(0)
        if features.size(0) == 0:
            return []
        features = features.to(self.recognizer.device)
        frames = self.encoder.accept_features(features)
        return self._emit(self.search.accept(frames, self.chunk_size, final=False))

    def _emit(self, settled: int) -> List[StreamedToken]:
        """The best hypothesis's newly settled tokens (up to ``settled``), stamped with the audio received."""
        if settled <= len(self.emitted):
            return []
        labels, times = self.search.best(self.frame_seconds, self.seconds)
        start = len(self.emitted)
        new = [
            StreamedToken(self.dictionary[label], begin, end, round(self.seconds, 3))
            for label, (begin, end) in zip(labels[start:settled], times[start:settled], strict=True)
        ]
        self.emitted.extend(new)
        return new


class _CifStreamSearch:
    """CIF weights chunk by chunk, fires over the whole stream, the decoder step by step."""

    def __init__(self, model, generator: CifGenerator):
        self.cif, self.generator = model.cif, generator
        self.frames: List[Tensor] = []  # (1, n, D) encoder frames
        self.weights: List[Tensor] = []  # (1, n) CIF weights
        self.predictor_context: Optional[Tensor] = None
        self.fired = 0
        self.fire_frames: List[int] = []
        self.search: Optional[CifSearch] = None
        self.vectors: Optional[Tensor] = None  # (1, N, C) every CIF vector fired
        self.final = False
        self.settled = 0

    @torch.no_grad()
    def accept(self, frames: Tensor, chunk_size: int, final: bool) -> int:
        """New encoder frames (1, m, D) -> how many leading labels of the best hypothesis are settled."""
        if frames.size(1) == 0 and not final:
            return self.settled
        self.settled = self._accept(frames, chunk_size, final)
        return self.settled

    def _accept(self, frames: Tensor, chunk_size: int, final: bool) -> int:
        for start in range(0, frames.size(1), chunk_size):
            chunk = frames[:, start : start + chunk_size]
            weights, self.predictor_context = self.cif.weight_predictor.forward_chunk(
                chunk, self.predictor_context
            )
            self.frames.append(chunk)
            self.weights.append(weights)
        self.final = final
        if self.frames:
            self._fire(final)
        if self.search is None:
            return 0
        beams = self.search.result(final=final)[0][0]  # (K, N), best first
        labels = self._cut(beams[0].tolist())
        if final or self.generator.beam == 1:
            return len(labels)
        # a prefix every live hypothesis shares cannot change any more
        differs = (beams != beams[0]).any(dim=0).nonzero()
        shared = int(differs[0]) if len(differs) else beams.size(1)
        return min(shared, len(labels))

    def _fire(self, final: bool) -> None:
        """Integrate the whole stream's weights; hand the new fires' vectors to the search."""
        hidden, alpha = torch.cat(self.frames, dim=1), torch.cat(self.weights, dim=1)
        tail = self.generator.tail_threshold if final and self.cif.apply_tail_handling else None
        fired = integrate_and_fire(hidden, alpha, None, self.cif.threshold, tail)
        count = int(fired.fire_counts[0])
        if count == self.fired:
            return
        vectors = fired.cif_out[:, self.fired : count].to(hidden.dtype)
        if self.cif.output_proj is not None:
            vectors = self.cif.output_proj(vectors)
        self.fire_frames, self.fired = fired.fire_frames[0, :count].tolist(), count
        self.vectors = vectors if self.vectors is None else torch.cat([self.vectors, vectors], dim=1)
        if self.search is None:
            self.search = CifSearch(self.generator, vectors)
        else:
            self.search.extend(vectors)
        self.search.advance()

    def labels(self) -> List[int]:
        """The best hypothesis so far, cut before its first ``</s>``."""
        if self.search is None:
            return []
        return self._cut(self.search.result(final=self.final)[0][0, 0].tolist())

    def _cut(self, tokens: List[int]) -> List[int]:
        return tokens[: tokens.index(self.generator.eos)] if self.generator.eos in tokens else tokens

    def best(self, frame_seconds: float, duration: float):
        labels = self.labels()
        weights = torch.cat(self.weights, dim=1)[0].cpu().numpy() if self.weights else np.zeros(0)
        times = cif_token_times(self.fire_frames[: len(labels)], weights, frame_seconds, 0.1, duration)
        return labels, times


class _CtcStreamSearch:
    """The CTC head's best label per frame as the frames arrive; repeats merged, blanks dropped."""

    def __init__(self, model, blank: int):
        self.model, self.blank = model, blank
        self.path: List[int] = []
        self.count = 0

    @torch.no_grad()
    def accept(self, frames: Tensor, chunk_size: int, final: bool) -> int:
        """New encoder frames (1, m, D) -> the number of labels so far (all settled)."""
        if frames.size(1):
            self.path += self.model.ctc_proj(frames)[0].argmax(dim=-1).tolist()
            self.count = len(merge_frame_labels(self.path, self.blank))
        return self.count

    def best(self, frame_seconds: float, duration: float):
        spans = merge_frame_labels(self.path, self.blank)
        return [span.label for span in spans], span_times(spans, frame_seconds, duration)


class _CtcPrefixStreamSearch:
    """CTC prefix beam search (with the generator's LM, token bonus and hotwords) advanced chunk by
    chunk; a label is settled once every live prefix holds it."""

    def __init__(self, model, generator: CtcGenerator):
        self.model, self.blank = model, generator.blank
        if generator.scorer is not None:
            generator.scorer.to(next(model.parameters()).device)
        self.search = CtcPrefixSearch(
            generator.blank,
            generator.beam,
            generator.scorer,
            generator.lm_weight,
            generator.token_bonus,
            generator.context_graph,
        )
        self.log_probs: List[Tensor] = []  # (n, V) per chunk, for the final alignment
        self.final = False

    @torch.no_grad()
    def accept(self, frames: Tensor, chunk_size: int, final: bool) -> int:
        if frames.size(1):
            log_probs = torch.log_softmax(self.model.ctc_proj(frames)[0].float(), dim=-1).cpu()
            self.log_probs.append(log_probs)
            self.search.advance(log_probs)
        self.final = final
        if final:
            return len(self.labels())
        live = [prefix for prefix, _ in self.search.ranked()]
        shared = 0
        while live and all(len(prefix) > shared and prefix[shared] == live[0][shared] for prefix in live):
            shared += 1
        return shared

    def labels(self) -> List[int]:
        best = self.search.results() if self.final else self.search.ranked()
        return list(best[0][0]) if best else []

    def best(self, frame_seconds: float, duration: float):
        labels = self.labels()
        if not labels:
            return [], []
        log_probs = torch.cat(self.log_probs)
        spans = ctc_forced_align(log_probs, labels, self.blank)
        return labels, span_times(spans, frame_seconds, duration)

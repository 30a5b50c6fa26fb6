"""``Recognizer``: one object that transcribes audio with any of the plugin's model families.

    recognizer = Recognizer.from_pretrained("exp/package")      # or a checkpoint
    for transcript in recognizer.transcribe(["a.wav", "b.flac"], batch_size=16):
        print(transcript.text, transcript.tokens)

Utterances are sorted by length and decoded in batches under a frame budget; an utterance's result
does not depend on what else is in its batch (the encoder never sees padding, every search runs per
utterance). Recordings longer than ``max_segment_seconds`` are split at pauses
(``segmentation.py``) and their token times put back on the recording's clock.
"""

import copy
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from fairseq import checkpoint_utils

from ..generation import CtcGenerator, DecodingOptions
from ..models.asr_model import AsrModel
from ..modules.cif import DECODING_TAIL_THRESHOLD
from ..ops.ctc import ctc_blank_index, ctc_forced_align
from ..ops.hotwords import (
    DEFAULT_HOTWORD_SCORE,
    NO_HOTWORDS_WITH_VITERBI,
    HotwordSource,
    build_context_graph,
)
from ..tasks.fbank_features import FRAME_SHIFT_SECONDS, SAMPLE_RATE, WINDOW_SAMPLES, AudioError, kaldi_fbank
from .audio import AudioInput, input_name, read_input
from .batching import in_windows, length_sorted_batches
from .features import FeatureExtractor
from .packages import CONFIG, WEIGHTS, is_package, verify_package
from .results import TokenTiming, Transcript, assemble_transcripts, symbols_to_text
from .segmentation import split_long_audio
from .streaming import StreamingSession
from .timestamps import cif_token_times, span_times

__all__ = ["Recognizer"]

logger = logging.getLogger(__name__)


@dataclass
class _Segment:
    """One decodable piece of an input: its features and where it sits in the input."""

    input_index: int
    offset: float
    duration: float
    features: np.ndarray


class Recognizer:
    """Transcribes audio with a trained model (use :meth:`from_pretrained`).

    Args:
        model (AsrModel): the model, in eval mode on its device.
        task: its ``speech_to_text_cif`` task (dictionary, data config).
        options (DecodingOptions): search settings.
        onset (float): CIF weight at which a CIF token starts (timestamps).
        max_segment_seconds (float): longer inputs are split at pauses.
    """

    def __init__(
        self,
        model: AsrModel,
        task,
        options: DecodingOptions,
        onset: float = 0.1,
        max_segment_seconds: float = 30.0,
    ):
        self.model, self.task, self.options = model, task, options
        self.dictionary = task.target_dictionary
        self.device = next(model.parameters()).device
        self.features = FeatureExtractor(task.data_cfg)
        self.generator = model.build_generator(self.dictionary, options)
        self.frame_seconds = FRAME_SHIFT_SECONDS * model.encoder.frame_stride
        self.onset, self.max_segment_seconds = onset, max_segment_seconds
        self.bpe = task.data_cfg.bpe_tokenizer is not None

    @classmethod
    def from_pretrained(
        cls,
        path,
        device: str = "cpu",
        beam: int = 1,
        lm_path: Optional[str] = None,
        ngram_lm_path: Optional[str] = None,
        lm_weight: Optional[float] = None,
        ctc_token_bonus: float = 0.0,
        tail_threshold: float = DECODING_TAIL_THRESHOLD,
        data: Optional[str] = None,
        hotwords: Optional[HotwordSource] = None,
        hotword_score: float = DEFAULT_HOTWORD_SCORE,
        backend: str = "torch",
        **kwargs,
    ) -> "Recognizer":
        """A recogniser from a model package (``scripts/export_model.py``) or a checkpoint; with
        ``backend="onnxruntime"``, an :class:`~cif_plugin.runtime.OnnxRecognizer` of a folder written
        by ``scripts/export_onnx.py`` (same ``transcribe``, no torch; docs/onnx.md).

        Args:
            path: a package folder, or a checkpoint of s2t_cif_transformer, s2t_ctc_conformer or
                s2t_asg_conformer (its training data folder, or ``data``, must hold config.yaml
                and dict.txt).
            device (str): torch device. beam (int): beam size (1: greedy; ASG is always Viterbi).
            lm_path, ngram_lm_path, lm_weight, ctc_token_bonus, tail_threshold: see
                :class:`DecodingOptions` (``lm_weight`` None: 0, or an ONNX folder's exported weight).
            data (str, optional): the data folder of a checkpoint, if not the one it was trained on.
            hotwords, hotword_score: phrases to bias the search towards (a file, or a list of
                phrases / (phrase, score) pairs; CIF and CTC models), see :meth:`set_hotwords`.
            backend (str): "torch", or "onnxruntime" (greedy or beam search; the LM is the one
                exported into the folder, ``lm_weight`` 0 leaves it out; no ``data``; CPU).
            **kwargs: ``onset``, ``max_segment_seconds``.
        """
        if backend == "onnxruntime":
            given = {"lm_path": lm_path, "ngram_lm_path": ngram_lm_path, "data": data}
            unsupported = [name for name, value in given.items() if value] + (
                ["device"] if device != "cpu" else []
            )
            if unsupported:
                raise ValueError(f"the onnxruntime backend does not take {', '.join(unsupported)}")
            from ..runtime import OnnxRecognizer

            return OnnxRecognizer(
                path,
                beam=beam,
                onset=kwargs.get("onset", 0.1),
                max_segment_seconds=kwargs.get("max_segment_seconds", 30.0),
                lm_weight=lm_weight,
                hotwords=hotwords,
                hotword_score=hotword_score,
            )
        if backend != "torch":
            raise ValueError(f"backend {backend!r}: 'torch' or 'onnxruntime'")
        path = Path(path)
        if is_package(path):
            verify_package(path)
            weights, overrides = path / WEIGHTS, {"data": str(path), "config_yaml": CONFIG}
        elif path.is_file():
            weights, overrides = path, ({"data": str(data)} if data else None)
        else:
            raise FileNotFoundError(f"{path}: neither a model package (no model.json) nor a checkpoint file")
        try:
            models, _, task = checkpoint_utils.load_model_ensemble_and_task(
                [str(weights)], arg_overrides=overrides
            )
        except FileNotFoundError as error:
            raise FileNotFoundError(
                f"{error}\n{path}: the checkpoint's data folder (config.yaml, dict.txt) is missing: "
                "pass data=..."
            ) from None
        model = models[0]
        if not isinstance(model, AsrModel):
            raise ValueError(f"{path} holds a {type(model).__name__}, not a model of this plugin")
        model = model.float().to(device).eval()
        options = DecodingOptions(
            beam=beam,
            lm_path=lm_path,
            ngram_lm_path=ngram_lm_path,
            lm_weight=lm_weight or 0.0,
            ctc_token_bonus=ctc_token_bonus,
            tail_threshold=tail_threshold,
            data_dir=task.args.data,
            hotwords=hotwords,
            hotword_score=hotword_score,
        )
        return cls(model, task, options, **kwargs)

    def set_hotwords(
        self, hotwords: Optional[HotwordSource], hotword_score: float = DEFAULT_HOTWORD_SCORE
    ) -> None:
        """Bias later transcriptions towards ``hotwords`` (a file, or a list of phrases / (phrase,
        score) pairs; None or an empty list: no biasing). Phrases with characters outside the
        dictionary are logged and left out."""
        if not hasattr(self.generator, "context_graph"):
            raise ValueError(NO_HOTWORDS_WITH_VITERBI)
        self.generator.context_graph = build_context_graph(hotwords, self.dictionary, hotword_score)
        self.options = dataclasses.replace(self.options, hotwords=hotwords, hotword_score=hotword_score)

    def with_search(
        self,
        beam: Optional[int] = None,
        hotwords: Optional[HotwordSource] = None,
        hotword_score: Optional[float] = None,
    ) -> "Recognizer":
        """A recogniser sharing this one's model, features and LM, with another beam size or other
        hotwords (None: keep this one's). Neither recogniser changes the other's search: a server
        gives each request its own.

        Raises:
            ValueError: a beam below 1, or hotwords for an ASG model.
        """
        if beam is not None and beam < 1:
            raise ValueError(f"beam {beam}: the beam size is at least 1")
        variant = copy.copy(self)
        variant.generator = copy.copy(self.generator)
        if beam is not None:
            variant.generator.beam = beam
            variant.options = dataclasses.replace(variant.options, beam=beam)
        if hotwords is not None or hotword_score is not None:
            score = self.options.hotword_score if hotword_score is None else hotword_score
            variant.set_hotwords(self.options.hotwords if hotwords is None else hotwords, score)
        return variant

    def transcribe(
        self, inputs: Iterable[AudioInput], batch_size: int = 16, max_batch_frames: int = 60000
    ) -> List[Transcript]:
        """One :class:`Transcript` per input, in input order (see :meth:`iter_transcribe`)."""
        return list(self.iter_transcribe(inputs, batch_size, max_batch_frames))

    def iter_transcribe(
        self,
        inputs: Iterable[AudioInput],
        batch_size: int = 16,
        max_batch_frames: int = 60000,
        window: int = 256,
    ) -> Iterator[Transcript]:
        """Transcripts in input order, ``window`` inputs read and decoded at a time.

        Args:
            inputs: paths, (samples, sample rate) pairs or ``NamedAudio``.
            batch_size (int): at most this many utterances per batch.
            max_batch_frames (int): at most this many feature frames (10 ms) per batch, padding
                included.
            window (int): inputs held in memory at once.
        """
        for items in in_windows(inputs, window):
            yield from self._transcribe_window(items, batch_size, max_batch_frames)

    def _transcribe_window(self, items, batch_size: int, max_batch_frames: int) -> Iterator[Transcript]:
        transcripts, segments = [], []
        for position, (index, item) in enumerate(items):
            name = input_name(item, index)
            try:
                waveform = read_input(item, index)
                segments += self._segments(position, waveform, name)
                transcripts.append(Transcript(name=name, duration=round(waveform.shape[1] / SAMPLE_RATE, 3)))
            except AudioError as error:
                transcripts.append(Transcript(name=name, error=str(error)))
        decoded = []  # (input index, offset, symbols, times, score) of each segment
        for batch in self._batches(segments, batch_size, max_batch_frames):
            decoded += [
                (segment.input_index, segment.offset, *result)
                for segment, result in zip(batch, self._decode(batch), strict=True)
            ]
        assemble_transcripts(transcripts, decoded, self.text_of)
        yield from transcripts

    def _segments(
        self, position: int, waveform: torch.Tensor, name: str, split: bool = True
    ) -> List[_Segment]:
        duration = waveform.shape[1] / SAMPLE_RATE
        if duration <= self.max_segment_seconds or not split:
            ranges = [(0, waveform.shape[1])]
        else:
            ranges = split_long_audio(waveform, self.max_segment_seconds)
        segments = []
        for start, end in ranges:
            features = self.features(waveform[:, start:end]) if end - start >= WINDOW_SAMPLES else []
            encoder_frames = int(self.model.encoder.output_lengths(torch.tensor([len(features)])))
            if encoder_frames < 1:
                if len(ranges) == 1:
                    raise AudioError(Path(name), f"{duration:.3f} s is too short for the model")
                continue
            segments.append(_Segment(position, start / SAMPLE_RATE, (end - start) / SAMPLE_RATE, features))
        return segments

    @staticmethod
    def _batches(segments: Sequence[_Segment], batch_size: int, max_batch_frames: int):
        """Segments sorted by length, in batches of at most ``batch_size`` and ``max_batch_frames``."""
        return length_sorted_batches(segments, lambda s: len(s.features), batch_size, max_batch_frames)

    def _net_input(self, batch: Sequence[_Segment]) -> Dict[str, torch.Tensor]:
        lengths = torch.tensor([len(s.features) for s in batch])
        src_tokens = torch.zeros(len(batch), int(lengths.max()), batch[0].features.shape[1])
        for b, segment in enumerate(batch):
            src_tokens[b, : len(segment.features)] = torch.from_numpy(segment.features)
        return {"src_tokens": src_tokens.to(self.device), "src_lengths": lengths.to(self.device)}

    @torch.no_grad()
    def _best_hypotheses(self, batch: Sequence[_Segment]) -> List[Dict]:
        sample = {"net_input": self._net_input(batch)}
        return [hypotheses[0] for hypotheses in self.generator.generate([self.model], sample)]

    def _hypothesis_result(self, best: Dict, segment: _Segment):
        """(symbols, (start, end) seconds within the segment, score) of a hypothesis."""
        tokens = [t for t in best["tokens"].tolist() if t != self.dictionary.eos()]
        if "fire_frames" in best:  # CIF
            times = cif_token_times(
                best["fire_frames"][: len(tokens)].tolist(),
                best["cif_weights"].numpy(),
                self.frame_seconds,
                self.onset,
                segment.duration,
            )
        else:  # CTC, ASG
            times = span_times(best["token_spans"], self.frame_seconds, segment.duration)
        return [self.dictionary[t] for t in tokens], times, float(best["score"])

    def _decode(self, batch: Sequence[_Segment]):
        return [
            self._hypothesis_result(best, s)
            for best, s in zip(self._best_hypotheses(batch), batch, strict=True)
        ]

    def _single_segment(self, item: AudioInput) -> Tuple[str, torch.Tensor, _Segment]:
        """(name, waveform, one segment of the whole input): ``inspect`` and ``align`` look at a
        whole input, however long, without splitting it at pauses."""
        waveform = read_input(item, 0)
        name = input_name(item, 0)
        return name, waveform, self._segments(0, waveform, name, split=False)[0]

    def stream(self, chunk_ms: Optional[int] = None) -> StreamingSession:
        """A :class:`~cif_plugin.inference.streaming.StreamingSession` over this model: audio in
        pieces, tokens out as their chunk is decoded (chunk-causal CIF and CTC models,
        docs/streaming.md). ``chunk_ms``: chunk length, a multiple of the model's frame (default:
        the model's ``--encoder-chunk-size``)."""
        return StreamingSession(self, chunk_ms)

    @torch.no_grad()
    def inspect(self, item: AudioInput) -> Dict:
        """One input's decode with what plots show: ``fbank`` (frames, 80) before the model's
        transforms, ``frame_weights`` (T',) with its ``weights_label`` (CIF weights, or
        1 - P(blank) for CTC models; None for ASG), ``token_marks`` (seconds: where each CIF token
        fired, where each CTC/ASG token's span starts), ``frame_seconds``, and ``transcript``."""
        name, waveform, segment = self._single_segment(item)
        duration = segment.duration
        best = self._best_hypotheses([segment])[0]
        symbols, times, score = self._hypothesis_result(best, segment)
        tokens = [TokenTiming(symbol, *time) for symbol, time in zip(symbols, times, strict=True)]
        transcript = Transcript(name, self.text_of(symbols), tokens, round(score, 4), round(duration, 3))
        weights, label = None, None
        if "fire_frames" in best:
            weights, label = best["cif_weights"].numpy(), "CIF weight"
            marks = [
                (frame + 1) * self.frame_seconds for frame in best["fire_frames"][: len(symbols)].tolist()
            ]
        else:
            marks = [span.start * self.frame_seconds for span in best["token_spans"]]
            if isinstance(self.generator, CtcGenerator):
                logits, _ = self.model.ctc_head(**self._net_input([segment]))
                blank = ctc_blank_index(self.dictionary)
                weights = 1.0 - torch.softmax(logits[0].float(), dim=-1)[:, blank].cpu().numpy()
                label = "1 - P(blank)"
        return {
            "fbank": kaldi_fbank(waveform),
            "frame_weights": weights,
            "weights_label": label,
            "token_marks": marks,
            "frame_seconds": self.frame_seconds,
            "transcript": transcript,
        }

    @torch.no_grad()
    def align(self, item: AudioInput, text: str) -> Transcript:
        """Force-align a transcript (characters; spaces ignored) with the model's CTC head."""
        characters = list("".join(text.split()))
        unknown = [c for c in characters if self.dictionary.index(c) == self.dictionary.unk()]
        if unknown:
            raise ValueError(f"characters outside the dictionary: {''.join(unknown)}")
        name, _, segment = self._single_segment(item)
        duration = segment.duration
        logits, lengths = self.model.ctc_head(**self._net_input([segment]))
        log_probs = torch.log_softmax(logits[0, : int(lengths[0])].float(), dim=-1).cpu()
        labels = [self.dictionary.index(c) for c in characters]
        try:
            spans = ctc_forced_align(log_probs, labels, ctc_blank_index(self.dictionary))
        except ValueError as error:
            raise AudioError(Path(name), str(error)) from None
        times = span_times(spans, self.frame_seconds, duration)
        tokens = [
            TokenTiming(self.dictionary[span.label], *time) for span, time in zip(spans, times, strict=True)
        ]
        return Transcript(name, "".join(characters), tokens, duration=round(duration, 3))

    def text_of(self, symbols: List[str]) -> str:
        """Decoded symbols as text: characters joined, or sentencepiece pieces decoded."""
        return symbols_to_text(symbols, self.bpe)

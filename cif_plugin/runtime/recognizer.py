"""``OnnxRecognizer``: transcription with an exported ONNX folder and onnxruntime, without torch or
fairseq (docs/onnx.md).

    recognizer = OnnxRecognizer("exp/onnx", beam=10)
    for transcript in recognizer.transcribe(["a.wav"]):
        print(transcript.text, transcript.tokens)

The same results as :class:`cif_plugin.inference.Recognizer` on the model it was exported from:
utterances are sorted by length and encoded in batches (a result does not depend on its batch),
searched one by one, and given token times by the same rules (``cif_plugin.inference.timestamps``).
Inputs longer than ``max_segment_seconds`` are split at pauses as the PyTorch recogniser splits them
(``cif_plugin.inference.speech_regions``, with the voice activity model in the folder).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import numpy as np

from ..decoding_defaults import DEFAULT_HOTWORD_SCORE
from ..inference.audio_inputs import input_name
from ..inference.batching import in_windows, length_sorted_batches
from ..inference.results import Transcript, assemble_transcripts, symbols_to_text
from ..inference.speech_regions import SileroVad, cut_regions
from ..inference.timestamps import cif_token_times, span_times
from ..ops.hotwords import NO_HOTWORDS_WITH_VITERBI, HotwordSource, build_context_graph
from .audio import SAMPLE_RATE, RuntimeAudioError, read_samples
from .bundle import GRAPH_SIGNATURES, LM_GRAPH, LM_SIGNATURE, open_session, read_bundle_manifest
from .features import NumpyFeatures
from .lm_prefix_scorer import OnnxLmPrefixScorer
from .search import CifStepSearch, asg_best_path, ctc_best_path, ctc_prefix_best

__all__ = ["OnnxRecognizer"]


@dataclass
class _Segment:
    """One decodable piece of an input: its features and where it sits in the input."""

    position: int
    offset: float
    duration: float
    features: np.ndarray


class _SymbolIndex:
    """The folder's symbols as the dictionary hotword encoding reads (``index``, ``unk``)."""

    def __init__(self, symbols: List[str], unk: int):
        self._index = {symbol: i for i, symbol in reversed(list(enumerate(symbols)))}  # the first wins
        self._unk = unk

    def index(self, symbol: str) -> int:
        return self._index.get(symbol, self._unk)

    def unk(self) -> int:
        return self._unk


_WINDOW_SAMPLES = 400  # one 25 ms analysis window: the shortest audio with a frame


class OnnxRecognizer:
    """Transcribes audio with an exported ONNX folder.

    Args:
        folder: written by ``scripts/export_onnx.py``.
        beam (int): beam size (1: greedy; CTC: best path, else prefix beam search); ASG models decode
            by Viterbi.
        onset (float): CIF weight at which a CIF token starts (timestamps).
        threads (int): onnxruntime intra-op threads (0: its default).
        lm_weight (float, optional): weight of the folder's fusion LM (``--lm-path`` or, for CTC
            beam search, ``--ngram-lm-path`` at export); None: the weight it was exported with, 0: no LM.
        hotwords, hotword_score: phrases to bias the search towards (CIF and CTC models), as
            :meth:`set_hotwords` takes them.
        max_segment_seconds (float): longer inputs are split at pauses, by the voice activity model
            exported into the folder (without it, decoded whole).
    """

    def __init__(
        self,
        folder,
        beam: int = 1,
        onset: float = 0.1,
        threads: int = 0,
        lm_weight: Optional[float] = None,
        hotwords: Optional[HotwordSource] = None,
        hotword_score: float = DEFAULT_HOTWORD_SCORE,
        max_segment_seconds: float = 30.0,
    ):
        self.folder = Path(folder)
        if beam < 1:
            raise ValueError(f"beam {beam}: the beam size is at least 1")
        manifest = read_bundle_manifest(self.folder)
        self.manifest, self.family, self.beam, self.onset = manifest, manifest["family"], beam, onset
        signatures = GRAPH_SIGNATURES[self.family]
        self.encoder = open_session(self.folder / "encoder.onnx", signatures["encoder.onnx"], threads)
        # a CIF search reads no CTC log-probabilities: not fetched, they are not copied out (onnxruntime
        # still computes every node of the graph)
        self.encoder_outputs = [
            name for name in signatures["encoder.onnx"][1] if self.family != "cif" or name != "ctc_log_probs"
        ]
        self.symbols = manifest["symbols"]
        self.eos = manifest["special"]["eos"]
        self.frame_seconds = manifest["frame_seconds"]
        self.features = NumpyFeatures(manifest["feature_transforms"], self.folder, manifest["num_mel_bins"])
        vad = manifest.get("vad")
        self.vad_file, self.vad = (self.folder / vad["file"] if vad else None), None
        self.max_segment_seconds = max_segment_seconds
        if self.family == "asg":
            self.transitions = np.load(self.folder / "transitions.npy")
        if self.family == "cif":
            step = open_session(self.folder / "decoder_step.onnx", signatures["decoder_step.onnx"], threads)
            banned = [manifest["special"]["pad"], manifest["special"]["bos"]]
            lm, lm_session = manifest.get("lm"), None
            self.lm_weight = (lm or {}).get("weight", 0.0) if lm_weight is None else lm_weight
            if self.lm_weight and lm is None:
                raise ValueError(f"{self.folder}: exported without a language model (--lm-path) to fuse")
            if self.lm_weight:
                lm_session = open_session(self.folder / LM_GRAPH, LM_SIGNATURE, threads)
            self.search = CifStepSearch(
                step, manifest["decoder"], self.eos, banned, beam, lm_session, lm, self.lm_weight
            )
        elif self.family == "ctc":
            self.ctc_scorer, lm, ngram = None, manifest.get("lm"), manifest.get("ngram")
            fused = lm or ngram
            self.lm_weight = (fused or {}).get("weight", 0.0) if lm_weight is None else lm_weight
            if self.lm_weight and fused is None:
                raise ValueError(
                    f"{self.folder}: exported without a language model (--lm-path or --ngram-lm-path) to fuse"
                )
            if self.lm_weight and lm is not None:
                session = open_session(self.folder / LM_GRAPH, LM_SIGNATURE, threads)
                self.ctc_scorer = OnnxLmPrefixScorer(session, lm, self.eos)
            elif self.lm_weight:
                from ..ops.ngram_prefix_scorer import KenLmPrefixScorer

                self.ctc_scorer = KenLmPrefixScorer(self.folder / ngram["file"], self.symbols)
        elif lm_weight:
            raise ValueError("the onnxruntime backend decodes ASG models by Viterbi, without an LM")
        self.context_graph = None
        if hotwords is not None:
            self.set_hotwords(hotwords, hotword_score)

    def set_hotwords(
        self, hotwords: Optional[HotwordSource], hotword_score: float = DEFAULT_HOTWORD_SCORE
    ) -> None:
        """Bias later transcriptions towards ``hotwords`` (a file, or a list of phrases / (phrase,
        score) pairs; None or an empty list: no biasing), as ``Recognizer.set_hotwords`` does: the
        same graph over the folder's dictionary, the same searches."""
        if self.family == "asg":
            raise ValueError(NO_HOTWORDS_WITH_VITERBI)
        self.context_graph = build_context_graph(
            hotwords, _SymbolIndex(self.symbols, self.manifest["special"]["unk"]), hotword_score
        )
        if self.family == "cif":
            self.search.graph = self.context_graph

    @classmethod
    def from_pretrained(cls, folder, **kwargs) -> "OnnxRecognizer":
        return cls(folder, **kwargs)

    def transcribe(
        self, inputs: Iterable, batch_size: int = 16, max_batch_frames: int = 60000
    ) -> List[Transcript]:
        """One :class:`Transcript` per input (paths, (samples, 16000) pairs, ``NamedAudio``), in order."""
        return list(self.iter_transcribe(inputs, batch_size, max_batch_frames))

    def iter_transcribe(
        self, inputs: Iterable, batch_size: int = 16, max_batch_frames: int = 60000, window: int = 256
    ):
        """Transcripts in input order, ``window`` inputs read and decoded at a time."""
        for items in in_windows(inputs, window):
            yield from self._transcribe_window(items, batch_size, max_batch_frames)

    def _transcribe_window(self, items, batch_size: int, max_batch_frames: int):
        transcripts, segments, pieces = [], [], []  # pieces: how many ranges each input was cut into
        for position, (index, item) in enumerate(items):
            name = input_name(item, index)
            try:
                samples = read_samples(item, index)
                found, ranges = self._segments(position, samples, name)  # too short: an error
                transcripts.append(Transcript(name=name, duration=round(len(samples) / SAMPLE_RATE, 3)))
                segments += found
                pieces.append(ranges)
            except RuntimeAudioError as error:
                transcripts.append(Transcript(name=name, error=str(error)))
                pieces.append(0)
        decoded = []  # (input index, offset, symbols, times, score) of each segment
        for batch in self._batches(segments, batch_size, max_batch_frames):
            for segment, result in zip(batch, self._decode(batch), strict=True):
                if not isinstance(result, str):
                    decoded.append((segment.position, segment.offset, *result))
                elif pieces[segment.position] == 1:  # too short: an error only when it is the whole input
                    transcripts[segment.position].error = f"{transcripts[segment.position].name}: {result}"
        assemble_transcripts(transcripts, decoded, self.text_of)
        yield from transcripts

    def _segments(self, position: int, samples: np.ndarray, name: str) -> Tuple[List[_Segment], int]:
        """The input whole, or its speech regions (cut to ``max_segment_seconds``) when it is longer
        and the folder has the voice activity model, as the PyTorch recogniser splits it; and the
        number of regions (a region too short for the model is skipped unless it is the only one)."""
        limit = int(self.max_segment_seconds * SAMPLE_RATE)
        if len(samples) <= limit or self.vad_file is None:
            ranges = [(0, len(samples))]
        else:
            if self.vad is None:
                self.vad = SileroVad(self.vad_file)
            ranges = cut_regions(self.vad.regions(samples), limit)
        segments = []
        for start, end in ranges:
            if end - start < _WINDOW_SAMPLES:
                if len(ranges) == 1:
                    raise RuntimeAudioError(
                        name, f"{(end - start) / SAMPLE_RATE:.3f} s is too short for the model"
                    )
                continue
            features = self.features(samples[start:end])
            segments.append(_Segment(position, start / SAMPLE_RATE, (end - start) / SAMPLE_RATE, features))
        return segments, len(ranges)

    @staticmethod
    def _batches(segments, batch_size: int, max_batch_frames: int):
        return length_sorted_batches(segments, lambda s: len(s.features), batch_size, max_batch_frames)

    def _decode(self, batch):
        """(symbols, (start, end) seconds, score) per utterance, or an error message."""
        lengths = np.array([len(segment.features) for segment in batch], dtype=np.int64)
        padded = np.zeros((len(batch), lengths.max(), batch[0].features.shape[1]), dtype=np.float32)
        for b, segment in enumerate(batch):
            padded[b, : len(segment.features)] = segment.features
        fetched = self.encoder.run(self.encoder_outputs, {"features": padded, "lengths": lengths})
        outputs = dict(zip(self.encoder_outputs, fetched, strict=True))
        results = []
        for b, duration in enumerate(segment.duration for segment in batch):
            frames = int(outputs["encoder_lengths"][b])
            if frames < 1:
                results.append(f"{duration:.3f} s is too short for the model")
            elif self.family == "cif":
                results.append(self._cif_result(outputs, b, frames, duration))
            else:
                if self.family == "ctc":
                    spans, score = self._ctc_search(outputs["ctc_log_probs"][b, :frames])
                else:
                    emissions = outputs["emissions"][b, :frames]
                    spans, score = asg_best_path(emissions, self.transitions, self.manifest["replabels"])
                symbols = [self.symbols[span.label] for span in spans]
                results.append((symbols, span_times(spans, self.frame_seconds, duration), score))
        return results

    def _ctc_search(self, log_probs: np.ndarray):
        """Best path at beam 1 with nothing fused, else prefix beam search with the n-gram LM and the
        token bonus (as ``CtcGenerator`` decides)."""
        bonus, graph = self.manifest.get("ctc_token_bonus", 0.0), self.context_graph
        if self.beam == 1 and self.ctc_scorer is None and bonus == 0 and graph is None:
            return ctc_best_path(log_probs, self.manifest["blank"])
        return ctc_prefix_best(
            log_probs, self.manifest["blank"], self.beam, self.ctc_scorer, self.lm_weight, bonus, graph
        )

    def _cif_result(self, outputs, b: int, frames: int, duration: float):
        count = int(outputs["fire_counts"][b])
        tokens, scores = self.search(outputs["cif_out"][b, :count])
        kept = [t for t in tokens if t != self.eos]
        times = cif_token_times(
            outputs["fire_frames"][b, : len(kept)].tolist(),
            outputs["cif_weights"][b, :frames],
            self.frame_seconds,
            self.onset,
            duration,
        )
        score = float(np.sum(np.asarray(scores, dtype=np.float32)))
        if self.context_graph is not None:  # as the PyTorch recogniser reports it
            score += self.context_graph.score(tokens)
        return [self.symbols[t] for t in kept], times, score

    def text_of(self, symbols: List[str]) -> str:
        """Decoded symbols as text (:func:`~cif_plugin.inference.results.symbols_to_text`)."""
        return symbols_to_text(symbols, self.manifest["sentencepiece"])

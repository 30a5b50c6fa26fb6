"""Speech regions of a long recording, without torch: silero-vad's ONNX model run by onnxruntime, and
its default rules for turning speech probabilities into regions (tests/test_speech_regions.py
checks both against silero-vad's own functions).

Both recognisers split long inputs with this module (``segmentation.py`` for PyTorch; the ONNX
runtime with the model copied into its folder, docs/onnx.md), so they cut a recording at the same
samples.
"""

import importlib.util
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

__all__ = ["SileroVad", "cut_regions", "installed_silero_vad_model", "regions_from_probabilities"]

SAMPLE_RATE = 16000
WINDOW = 512  # samples per speech probability at 16 kHz
_CONTEXT = 64  # samples of the previous window the model reads with each window
# silero-vad's defaults (get_speech_timestamps): a region starts at a window >= 0.5, ends after
# 100 ms below 0.35, is kept if longer than 250 ms, and is padded by 30 ms on each side
THRESHOLD, END_THRESHOLD = 0.5, 0.35
MIN_SPEECH, MIN_SILENCE, PAD = SAMPLE_RATE * 250 // 1000, SAMPLE_RATE * 100 // 1000, SAMPLE_RATE * 30 // 1000


def installed_silero_vad_model() -> Path:
    """silero-vad's ONNX model file inside its installed package (found without importing the
    package, which imports torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("silero-vad is not installed: it ships the voice activity model")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.onnx"


class SileroVad:
    """Speech probabilities of 16 kHz samples, one per 512-sample window, from silero-vad's ONNX
    model (its recurrent state and the previous window's last 64 samples carried along).

    Args:
        path: the model file (default: the installed package's).
    """

    def __init__(self, path=None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        self.path = Path(path) if path is not None else installed_silero_vad_model()
        self.session = onnxruntime.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"]
        )

    def probabilities(self, samples: np.ndarray) -> List[float]:
        """(samples,) float waveform -> speech probability of each window (the last zero-padded)."""
        samples = np.asarray(samples, dtype=np.float32)
        padded = np.zeros(-(-len(samples) // WINDOW) * WINDOW + _CONTEXT, dtype=np.float32)
        padded[_CONTEXT : _CONTEXT + len(samples)] = samples
        state = np.zeros((2, 1, 128), dtype=np.float32)
        rate = np.array(SAMPLE_RATE, dtype=np.int64)
        probabilities = []
        for start in range(0, len(padded) - _CONTEXT, WINDOW):
            window = padded[None, start : start + _CONTEXT + WINDOW]
            output, state = self.session.run(None, {"input": window, "state": state, "sr": rate})
            probabilities.append(float(output[0, 0]))
        return probabilities

    def regions(self, samples: np.ndarray) -> List[Tuple[int, int]]:
        """(start, end) sample ranges of speech in ``samples``."""
        return regions_from_probabilities(self.probabilities(samples), len(samples))


def regions_from_probabilities(probabilities: Sequence[float], length: int) -> List[Tuple[int, int]]:
    """(start, end) sample ranges of speech from the per-window probabilities of ``length`` samples,
    by silero-vad's default rules (see the constants above): a hysteresis between the two
    thresholds, short pauses bridged, short regions dropped, then padding, halved between two
    regions closer than two paddings."""
    regions: List[List[int]] = []
    start, silence_start = None, 0
    for index, probability in enumerate(probabilities):
        sample = index * WINDOW
        if probability >= THRESHOLD:
            silence_start = 0
            if start is None:
                start = sample
            continue
        if start is None or probability >= END_THRESHOLD:
            continue
        if not silence_start:
            silence_start = sample
        if sample - silence_start >= MIN_SILENCE:
            if silence_start - start > MIN_SPEECH:
                regions.append([start, silence_start])
            start, silence_start = None, 0
    if start is not None and length - start > MIN_SPEECH:
        regions.append([start, length])
    for i, region in enumerate(regions):
        if i == 0:
            region[0] = max(0, region[0] - PAD)
        if i == len(regions) - 1:
            region[1] = min(length, region[1] + PAD)
            continue
        following = regions[i + 1]
        gap = following[0] - region[1]
        if gap < 2 * PAD:
            region[1] += gap // 2
            following[0] = max(0, following[0] - gap // 2)
        else:
            region[1] = min(length, region[1] + PAD)
            following[0] = max(0, following[0] - PAD)
    return [(start, end) for start, end in regions]


def cut_regions(regions: Sequence[Tuple[int, int]], max_samples: int) -> List[Tuple[int, int]]:
    """Each region longer than ``max_samples`` cut into the fewest equal parts that fit."""
    cut: List[Tuple[int, int]] = []
    for start, end in regions:
        parts = max(1, -(-(end - start) // max_samples))
        bounds = [start + (end - start) * k // parts for k in range(parts + 1)]
        cut.extend(zip(bounds[:-1], bounds[1:], strict=True))
    return cut

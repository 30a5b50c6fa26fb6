"""Speech regions without torch against silero-vad's own functions (the oracle)."""

import subprocess

import numpy as np
import pytest
import soundfile
import torch

from cif_plugin.inference.speech_regions import (
    WINDOW,
    SileroVad,
    cut_regions,
    regions_from_probabilities,
)


def _silero_regions(probabilities, length):
    from silero_vad import get_speech_timestamps_from_probs

    found = get_speech_timestamps_from_probs(list(probabilities), audio_length_samples=length)
    return [(region["start"], region["end"]) for region in found]


@pytest.mark.parametrize("seed", range(40))
def test_regions_from_probabilities_are_silero_vads(seed):
    """Runs of speech, pauses short and long, values between the two thresholds, and a recording
    that ends in speech or in a partial window."""
    rng = np.random.default_rng(seed)
    probabilities = []
    while len(probabilities) < 400:
        level = rng.choice([0.05, 0.3, 0.4, 0.6, 0.95])  # 0.4: between the end and start thresholds
        probabilities += list(np.clip(level + 0.05 * rng.normal(size=rng.integers(1, 20)), 0, 1))
    length = len(probabilities) * WINDOW - int(rng.integers(0, WINDOW))
    assert regions_from_probabilities(probabilities, length) == _silero_regions(probabilities, length)


def test_regions_at_the_edges_are_silero_vads():
    for probabilities in ([], [0.9], [0.9] * 10, [0.1] * 10, [0.9] * 8 + [0.1] * 4 + [0.9] * 8):
        length = len(probabilities) * WINDOW
        assert regions_from_probabilities(probabilities, length) == _silero_regions(probabilities, length)


def test_onnx_vad_gives_silero_vads_probabilities_and_regions(tmp_path):
    """Spoken phrases between silences: the model run window by window here equals silero-vad's
    own ONNX wrapper, and the regions its ``get_speech_timestamps``."""
    from silero_vad import get_speech_timestamps, load_silero_vad

    pieces = [np.zeros(8000)]
    for index, text in enumerate(["一二三", "四五六"]):
        wav = tmp_path / f"p{index}.wav"
        subprocess.run(
            ["espeak-ng", "-v", "cmn", "-w", str(wav), "--", text], check=True, capture_output=True
        )
        samples, rate = soundfile.read(str(wav), dtype="float32")
        pieces += [samples[:: max(1, rate // 16000)], np.zeros(12000)]  # espeak-ng writes 22.05 kHz
    recording = np.concatenate(pieces + [np.zeros(333)]).astype(np.float32)
    vad = SileroVad()
    ours = vad.probabilities(recording)
    silero = load_silero_vad(onnx=True)
    theirs = silero.audio_forward(torch.from_numpy(recording), 16000)[0].tolist()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    silero.reset_states()
    expected = [(r["start"], r["end"]) for r in get_speech_timestamps(torch.from_numpy(recording), silero)]
    assert vad.regions(recording) == expected and len(expected) == 2


def test_long_regions_are_cut_into_equal_parts():
    assert cut_regions([(0, 100), (150, 160)], 40) == [(0, 33), (33, 66), (66, 100), (150, 160)]
    assert cut_regions([(5, 45)], 40) == [(5, 45)]
    assert cut_regions([], 40) == []

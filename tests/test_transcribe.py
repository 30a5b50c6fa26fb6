"""scripts/transcribe.py: text with monotonic token times inside the audio, JSON, bad audio."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile

from cif_plugin.inference.timestamps import cif_token_times

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_token_times_follow_fires_and_weights():
    # cumulative weight: .05 .10 .60 1.05 1.07 1.10 1.60 2.08 2.13 -> fires at frames 3 and 7;
    # with onset 0.2 token 1 starts at frame 2 (0.60 > 0.2), token 2 at frame 6 (1.60 > 1.2): the
    # low-weight pause (frames 4-5) belongs to neither.
    weights = np.array([0.05, 0.05, 0.5, 0.45, 0.02, 0.03, 0.5, 0.48, 0.05])
    times = cif_token_times([3, 7], weights, frame_seconds=0.08, onset=0.2, duration=0.72)
    assert times == [(0.16, 0.32), (0.48, 0.64)]


def _wav(path: Path, seconds: float, rate: int, channels: int):
    rng = np.random.default_rng(0)
    audio = 0.1 * rng.normal(size=(int(seconds * rate), channels))
    soundfile.write(str(path), audio, rate)
    return path


def _transcribe(checkpoint, *args):
    command = [sys.executable, str(SCRIPTS / "transcribe.py"), "--checkpoint", str(checkpoint), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_json_output_with_times_inside_the_audio(tiny_checkpoint, tmp_path):
    first = _wav(tmp_path / "a.wav", 2.5, 16000, 1)
    second = _wav(tmp_path / "b.flac", 1.7, 44100, 2)  # stereo at another rate
    result = _transcribe(tiny_checkpoint, str(first), str(second), "--format", "json", "--beam", "3")
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = json.loads(result.stdout)
    assert [o["name"] for o in outputs] == [str(first), str(second)]
    for output, duration in zip(outputs, (2.5, 1.7), strict=True):
        assert abs(output["duration"] - duration) < 0.01
        assert "".join(t["token"] for t in output["tokens"]) == output["text"]
        bounds = [(t["start"], t["end"]) for t in output["tokens"]]
        assert all(0 <= start <= end <= duration for start, end in bounds)
        assert all(b[0] >= a[1] - 1e-9 for a, b in zip(bounds, bounds[1:], strict=False))  # no overlap
    assert any(output["tokens"] for output in outputs)


def test_unreadable_audio_is_reported_by_name(tiny_checkpoint, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    result = _transcribe(tiny_checkpoint, str(bad))
    assert result.returncode == 1 and "broken.wav" in result.stderr and "unreadable audio" in result.stderr

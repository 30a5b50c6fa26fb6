"""CTC forced alignment against a dynamic-programming reference, and scripts/align.py."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from cif_plugin.ops.ctc import ctc_forced_align, ctc_viterbi_path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "align.py"


def _reference_viterbi(log_probs, labels, blank):
    """Textbook CTC Viterbi over the blank-interleaved label sequence (2L + 1 states)."""
    states = [blank]
    for label in labels:
        states += [label, blank]
    frames, count = len(log_probs), len(states)
    score = [[-math.inf] * count for _ in range(frames)]
    back = [[0] * count for _ in range(frames)]
    score[0][0], score[0][1] = log_probs[0][states[0]], log_probs[0][states[1]]
    for t in range(1, frames):
        for s in range(count):
            options = [(score[t - 1][s], s)]
            if s >= 1:
                options.append((score[t - 1][s - 1], s - 1))
            if s >= 2 and states[s] != blank and states[s] != states[s - 2]:
                options.append((score[t - 1][s - 2], s - 2))
            best, origin = max(options)
            score[t][s], back[t][s] = best + log_probs[t][states[s]], origin
    s = max((count - 1, count - 2), key=lambda last: score[-1][last])
    total, path = score[-1][s], []
    for t in range(frames - 1, -1, -1):
        path.append(states[s])
        s = back[t][s]
    return path[::-1], total


@pytest.mark.parametrize("labels", [[1, 2, 3], [2, 2], [3, 1, 1, 2]])
def test_viterbi_path_equals_the_dynamic_programming_reference(labels):
    torch.manual_seed(len(labels))
    log_probs = torch.log_softmax(torch.randn(9, 4, dtype=torch.float64) * 3, dim=-1)
    path, score = ctc_viterbi_path(log_probs, labels, blank=0)
    expected_path, expected_score = _reference_viterbi(log_probs.tolist(), labels, blank=0)
    assert path.tolist() == expected_path
    assert score == pytest.approx(expected_score, rel=1e-5)
    spans = ctc_forced_align(log_probs, labels, blank=0)
    assert [span.label for span in spans] == labels
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:], strict=False)) and all(
        span.start < span.end for span in spans
    )


def test_too_few_frames_are_refused():
    with pytest.raises(ValueError, match="frames cannot hold"):
        ctc_viterbi_path(torch.zeros(3, 4).log_softmax(-1), [1, 1, 2], blank=0)  # 1 1 2 needs 4 frames


def test_align_script(tiny_checkpoint, tmp_path):
    audio = tmp_path / "a.wav"
    soundfile.write(str(audio), 0.1 * np.random.default_rng(0).normal(size=48000), 16000)
    command = [sys.executable, str(SCRIPT), "--checkpoint", str(tiny_checkpoint), "--audio", str(audio)]
    result = subprocess.run(
        command + ["--text", "一 二三", "--format", "json"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tokens = json.loads(result.stdout)["tokens"]
    assert [t["token"] for t in tokens] == ["一", "二", "三"]
    assert all(0 <= t["start"] < t["end"] <= 3.0 for t in tokens)
    assert all(a["end"] <= b["start"] for a, b in zip(tokens, tokens[1:], strict=False))
    refused = subprocess.run(command + ["--text", "一x"], capture_output=True, text=True)
    assert refused.returncode == 2 and "outside the dictionary: x" in refused.stderr

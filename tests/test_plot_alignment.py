"""scripts/plot_alignment.py writes a PNG and says how it wrote the tokens."""

import subprocess
import sys
from pathlib import Path

import matplotlib.image
import numpy as np
import soundfile

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plot_alignment.py"


def test_png_with_glyphs_or_pinyin(tiny_checkpoint, tmp_path):
    audio = tmp_path / "a.wav"
    soundfile.write(str(audio), 0.1 * np.random.default_rng(0).normal(size=32000), 16000)
    for extra, expected in (([], "Chinese glyphs in"), (["--pinyin"], "tokens in pinyin (as asked)")):
        output = tmp_path / f"plot{len(extra)}.png"
        command = [
            sys.executable,
            str(SCRIPT),
            str(audio),
            "--checkpoint",
            str(tiny_checkpoint),
            "--beam",
            "2",
        ]
        result = subprocess.run(command + ["--output", str(output), *extra], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        assert expected in result.stdout
        image = matplotlib.image.imread(str(output))
        assert image.shape[0] > 300 and image.shape[1] > 600


def test_png_for_a_ctc_model(ctc_training, tmp_path):
    audio = tmp_path / "a.wav"
    soundfile.write(str(audio), 0.1 * np.random.default_rng(1).normal(size=24000), 16000)
    output = tmp_path / "ctc.png"
    command = [sys.executable, str(SCRIPT), str(audio), "--model", str(ctc_training[1]), "--beam", "1"]
    result = subprocess.run(command + ["--output", str(output)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert matplotlib.image.imread(str(output)).shape[1] > 600

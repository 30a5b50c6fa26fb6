"""Slow: a few minutes of the demo's test utterances, joined with pauses, transcribed through the VAD
path by the models `make demo` trains (the recipe's finished stages are reused): within 1 % of the
same model transcribing each utterance alone, CER <= 5 % against the joined transcripts (the test
voices are held out of training), and every token within 0.2 s of where its utterance was placed."""

import subprocess
from pathlib import Path

import editdistance
import numpy as np
import pytest
import soundfile

from cif_plugin.inference import Recognizer

RECIPE = Path(__file__).resolve().parents[1] / "egs" / "synthetic_zh"
CORPUS = RECIPE / "data" / "corpus" / "data_aishell"


@pytest.fixture(scope="module")
def demo_models():
    result = subprocess.run(
        ["bash", str(RECIPE / "run.sh"), "--ctc"], capture_output=True, text=True, timeout=3600
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return {name: RECIPE / "exp" / f"{name}_tiny" / "checkpoint_best.pt" for name in ("cif", "ctc")}


@pytest.mark.slow
@pytest.mark.parametrize("family", ["cif", "ctc"])
def test_minutes_of_speech_through_the_vad_path(demo_models, family, tmp_path):
    transcripts = dict(
        line.split(" ", 1)
        for line in (CORPUS / "transcript" / "aishell_transcript_v0.8.txt")
        .read_text(encoding="utf-8")
        .splitlines()
    )
    rng = np.random.default_rng(0)
    pieces, placed, clock, rate = [], [], 0.0, None
    paths = sorted((CORPUS / "wav" / "test").glob("*/*.wav"))[:40]
    for path in paths:
        samples, rate = soundfile.read(str(path))
        pause = rng.uniform(0.8, 2.0)
        pieces += [np.zeros(int(pause * rate)), samples]
        clock += int(pause * rate) / rate
        placed.append((clock, clock + len(samples) / rate, transcripts[path.stem].replace(" ", "")))
        clock += len(samples) / rate
    recording = tmp_path / "long.wav"
    soundfile.write(str(recording), np.concatenate(pieces + [np.zeros(rate)]), rate)
    assert clock > 120  # minutes, far above max_segment_seconds
    recognizer = Recognizer.from_pretrained(demo_models[family])
    transcript = recognizer.transcribe([recording])[0]
    reference = "".join(text for _, _, text in placed)
    one_by_one = "".join(result.text for result in recognizer.transcribe(paths))
    assert editdistance.eval(transcript.text, one_by_one) <= 0.01 * len(reference)
    assert editdistance.eval(transcript.text, reference) <= 0.05 * len(reference)
    for token in transcript.tokens:
        assert any(start - 0.2 <= token.start and token.end <= end + 0.2 for start, end, _ in placed), token

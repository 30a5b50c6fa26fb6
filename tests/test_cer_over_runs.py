"""scripts/cer_over_runs.py: the CERs of several runs, their mean and spread, from per-utterance files."""

import statistics
import subprocess
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _score(tmp_path: Path, name: str, references: dict, hypotheses: dict) -> Path:
    """score_cer.py --per-utterance on one run's hypotheses: the file cer_over_runs.py reads."""
    ref, hyp = tmp_path / f"{name}.ref", tmp_path / f"{name}.hyp"
    ref.write_text("".join(f"{key} {text}\n" for key, text in references.items()), encoding="utf-8")
    hyp.write_text("".join(f"{key} {text}\n" for key, text in hypotheses.items()), encoding="utf-8")
    per_utterance = tmp_path / f"{name}.tsv"
    command = [sys.executable, str(SCRIPTS / "score_cer.py"), "--ref", str(ref), "--hyp", str(hyp)]
    subprocess.run(command + ["--per-utterance", str(per_utterance)], check=True, capture_output=True)
    return per_utterance


def _summary(*arguments) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPTS / "cer_over_runs.py"), *map(str, arguments)]
    return subprocess.run(command, capture_output=True, text=True)


def test_mean_and_sample_std_of_the_runs(tmp_path):
    references = {"u1": "一二三四", "u2": "五六七八九零"}  # 10 characters
    runs = [
        _score(tmp_path, "a", references, {"u1": "一二三四", "u2": "五六七八九零"}),  # 0 errors
        _score(tmp_path, "b", references, {"u1": "一二三", "u2": "五六七八九零"}),  # 1 deletion
        _score(tmp_path, "c", references, {"u1": "一二二四五", "u2": "六七八九零"}),  # 1 S, 1 I, 1 D
    ]
    result = _summary("--name", "test", *runs)
    assert result.returncode == 0, result.stderr
    assert (statistics.fmean([0, 10, 30]), round(statistics.stdev([0, 10, 30]), 2)) == (40 / 3, 15.28)
    expected = (
        "test: CER mean 13.33% ± 15.28 (sample std), range 0.00-30.00% over 3 runs: 0.00%, 10.00%, 30.00%"
    )
    assert result.stdout.strip() == expected


def test_runs_over_different_utterances_are_refused(tmp_path):
    first = _score(tmp_path, "a", {"u1": "一二"}, {"u1": "一二"})
    second = _score(tmp_path, "b", {"u2": "一二"}, {"u2": "一"})
    result = _summary(first, second)
    assert result.returncode == 2 and f"{second} scores other utterances than {first}" in result.stderr
    not_scores = tmp_path / "x.tsv"
    not_scores.write_text("id\tcer\nu1\t0.1\n")
    result = _summary(first, not_scores)
    assert result.returncode == 1 and "is not a score_cer.py --per-utterance file" in result.stderr

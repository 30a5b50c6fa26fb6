"""scripts/score_cer.py: edit counts labelled correctly, generate output keyed by utterance id."""

import random
import subprocess
import sys
from pathlib import Path

import editdistance
import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
from score_cer import align_counts, read_generate_output  # noqa: E402


@pytest.mark.parametrize(
    "reference, hypothesis, expected",
    [("今天很好", "今天好", (0, 1, 0)), ("今天好", "今天很好", (0, 0, 1)),
     ("今天很好", "明天很好", (1, 0, 0)), ("", "好", (0, 0, 1)), ("好", "", (0, 1, 0)),
     ("一二三四", "二三四五", (0, 1, 1))],
)  # fmt: skip
def test_substitutions_deletions_insertions_are_labelled(reference, hypothesis, expected):
    counts = align_counts(reference, hypothesis)
    assert (counts.substitutions, counts.deletions, counts.insertions) == expected
    assert counts.reference_length == len(reference)


def test_total_errors_equal_the_edit_distance():
    rng = random.Random(0)
    for _ in range(300):
        reference = "".join(rng.choices("abcd", k=rng.randint(0, 9)))
        hypothesis = "".join(rng.choices("abcd", k=rng.randint(0, 9)))
        assert align_counts(reference, hypothesis).errors == editdistance.eval(reference, hypothesis)


GENERATE_OUTPUT = """S-1\t
T-1\t三 四
H-1\t-0.5\t三 五
D-1\t-0.5\t三 五
P-1\t-0.2 -0.3
D-1\t-0.9\t三 四
T-0\t一 二
H-0\t-0.1\t一 二 二
D-0\t-0.1\t一 二 二
Generate test with beam=2: WER: 50.00
"""


def test_generate_output_is_keyed_by_utterance_id(tmp_path):
    (tmp_path / "gen.txt").write_text(GENERATE_OUTPUT, encoding="utf-8")
    (tmp_path / "test.tsv").write_text(
        "id\taudio\tn_frames\ttgt_text\tspeaker\nU0\ta\t1\t一 二\tS\nU1\tb\t1\t三 四\tS\n"
    )
    references, hypotheses = read_generate_output(tmp_path / "gen.txt", tmp_path / "test.tsv")
    assert references == {"U0": "一二", "U1": "三四"}
    assert hypotheses == {"U0": "一二二", "U1": "三五"}  # the first (best) hypothesis of each sample
    command = [sys.executable, str(SCRIPTS / "score_cer.py"), "--generate-output", str(tmp_path / "gen.txt")]
    command += ["--manifest", str(tmp_path / "test.tsv"), "--per-utterance", str(tmp_path / "cer.tsv")]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    assert "CER 50.00% [2 / 4: 1 substitutions, 0 deletions, 1 insertions] over 2 utterances" in output
    rows = (tmp_path / "cer.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[1].split("\t")[:5] == ["U0", "0", "0", "1", "2"]


def test_hyp_and_ref_files(tmp_path):
    (tmp_path / "ref.txt").write_text("A 今天 很好\nB 我们\n", encoding="utf-8")
    (tmp_path / "hyp.txt").write_text("B 我门\nA 今天很好\n", encoding="utf-8")
    command = [sys.executable, str(SCRIPTS / "score_cer.py"), "--hyp", str(tmp_path / "hyp.txt")]
    output = subprocess.run(
        command + ["--ref", str(tmp_path / "ref.txt")], capture_output=True, text=True
    ).stdout
    assert "CER 16.67% [1 / 6: 1 substitutions, 0 deletions, 0 insertions]" in output

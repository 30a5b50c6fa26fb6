"""scripts/make_synthetic_corpus.py: number words, determinism, AISHELL-1 layout, disjoint speakers."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
from make_synthetic_corpus import chinese_number, sentences_from_file  # noqa: E402


@pytest.mark.parametrize(
    "value, words",
    [(0, "零"), (7, "七"), (10, "十"), (15, "十五"), (20, "二十"), (101, "一百零一"), (110, "一百一十"),
     (2305, "二千三百零五"), (10010, "一万零一十"), (99999, "九万九千九百九十九")],
)  # fmt: skip
def test_chinese_numbers(value, words):
    assert chinese_number(value) == words


def test_text_file_sentences_restricted_to_frequent_characters(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("ID1 我们 很好\nID2 我们好\nID3 我们\nID4 天\n", encoding="utf-8")  # 我 们 x3, 好 x2
    assert sentences_from_file(path, top_chars=3, max_chars=10) == ["我们好", "我们"]
    assert sentences_from_file(path, top_chars=None, max_chars=3) == ["我们好", "我们", "天"]


def _synthesise(root: Path) -> Path:
    command = [sys.executable, str(SCRIPTS / "make_synthetic_corpus.py"), "--output-root", str(root)]
    command += [
        "--utterances",
        "6",
        "2",
        "2",
        "--speakers",
        "3",
        "1",
        "1",
        "--seed",
        "7",
        "--num-workers",
        "2",
    ]
    subprocess.run(command, check=True, capture_output=True)
    return root / "data_aishell"


def test_corpus_layout_is_deterministic_with_disjoint_speakers(tmp_path):
    first, second = _synthesise(tmp_path / "a"), _synthesise(tmp_path / "b")
    transcript = (first / "transcript" / "aishell_transcript_v0.8.txt").read_text(encoding="utf-8")
    assert transcript == (second / "transcript" / "aishell_transcript_v0.8.txt").read_text(encoding="utf-8")
    lines = transcript.splitlines()
    assert len(lines) == 10
    wavs = sorted(first.glob("wav/*/*/*.wav"))
    assert sorted(w.stem for w in wavs) == sorted(line.split()[0] for line in lines)
    for wav in wavs:
        assert wav.stem[6:11] == wav.parent.name  # AISHELL-1: the speaker is characters 7-11 of the id
        assert wav.read_bytes() == (second / wav.relative_to(first)).read_bytes()
    speakers = {
        split: {w.parent.name for w in first.glob(f"wav/{split}/*/*.wav")}
        for split in ("train", "dev", "test")
    }
    assert len(speakers["train"]) == 3 and speakers["train"].isdisjoint(speakers["dev"] | speakers["test"])
    assert speakers["dev"].isdisjoint(speakers["test"])

"""scripts/make_synthetic_corpus.py: number words, determinism, AISHELL-1 layout, disjoint speakers."""

import random
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
from make_synthetic_corpus import (  # noqa: E402
    DEV_VARIANTS,
    DIGITS,
    LONGEST_TRAINING_PHRASE,
    TEST_VARIANTS,
    TRAIN_PITCHES,
    TRAIN_SPEEDS,
    chinese_number,
    espeak_variants,
    long_phrase,
    make_speakers,
    number_phrase,
    sentences_from_file,
)


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
        "--long-utterances",
        "2",
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
    assert len(lines) == 12
    wavs = sorted(first.glob("wav/*/*/*.wav"))
    assert sorted(w.stem for w in wavs) == sorted(line.split()[0] for line in lines)
    for wav in wavs:
        assert wav.stem[6:11] == wav.parent.name  # AISHELL-1: the speaker is characters 7-11 of the id
        assert wav.read_bytes() == (second / wav.relative_to(first)).read_bytes()
    speakers = {
        split: {w.parent.name for w in first.glob(f"wav/{split}/*/*.wav")}
        for split in ("train", "dev", "test", "test_long")
    }
    assert len(speakers["train"]) == 3 and speakers["train"].isdisjoint(speakers["dev"] | speakers["test"])
    assert speakers["dev"].isdisjoint(speakers["test"]) and speakers["test_long"] == {"S3001"}
    long_texts = [line.split()[1] for line in lines if line.split()[0][6:11] == "S3001"]
    assert len(long_texts) == 2 and all(len(text) > LONGEST_TRAINING_PHRASE for text in long_texts)


def _inside(value, bounds):
    return bounds[0] <= value <= bounds[1]


def test_held_out_voices_never_speak_in_train():
    """Leave-variants-out: dev and test variants are absent from train, which uses every other variant;
    test speaks at rates and pitches outside the training ranges, dev inside them."""
    variants = espeak_variants()
    assert len(variants) > 40 and {"m1", "f5", "whisperf"} <= set(variants)
    train, dev, test = make_speakers(random.Random(3), (200, 16, 16), variants)
    train_variants = {variant for variant, _, _ in train}
    assert train_variants == set(variants) - set(DEV_VARIANTS) - set(TEST_VARIANTS)
    assert [variant for variant, _, _ in dev] == list(DEV_VARIANTS) * 2
    assert [variant for variant, _, _ in test] == list(TEST_VARIANTS) * 2
    for _, speed, pitch in train + dev:
        assert _inside(speed, TRAIN_SPEEDS) and _inside(pitch, TRAIN_PITCHES)
    for _, speed, pitch in test:
        assert not _inside(speed, TRAIN_SPEEDS) and not _inside(pitch, TRAIN_PITCHES)
    assert len({(speed, pitch) for _, speed, pitch in test}) > 8  # not one fixed setting per variant
    with pytest.raises(ValueError, match=r"lacks the held-out voice variants \['Annie'\]"):
        make_speakers(random.Random(3), (2, 1, 1), [v for v in variants if v != "Annie"])


def test_long_phrases_are_longer_than_every_training_phrase():
    """Training phrases compose two parts only within 12 characters (a day and a time, a count and
    a price); test_long says longer compositions."""
    rng = random.Random(5)
    training = [number_phrase(rng) for _ in range(20000)]
    assert max(len(text) for text in training) == LONGEST_TRAINING_PHRASE
    day_and_time = [t for t in training if "日" in t and "午" in t]
    count_and_price = [t for t in training if "个" in t and t.endswith("元")]
    assert len(day_and_time) > 100 and len(count_and_price) > 100
    assert not any("年" in t and "午" in t for t in training)  # a full date never has a time after it
    long_phrases = [long_phrase(rng) for _ in range(3000)]
    assert min(len(text) for text in long_phrases) == LONGEST_TRAINING_PHRASE + 1
    # Each kind of composition occurs: date and time, count and price, a digit string.
    assert {text[-1] for text in long_phrases} >= {"分", "元"}
    assert any(set(text) <= set(DIGITS) for text in long_phrases)


def test_speaker_counts_outside_1_to_999_are_refused(tmp_path):
    command = [sys.executable, str(SCRIPTS / "make_synthetic_corpus.py"), "--output-root", str(tmp_path)]
    result = subprocess.run(command + ["--speakers", "3", "0", "1"], capture_output=True, text=True)
    assert result.returncode != 0 and "--speakers: 1 to 999 per split, not [3, 0, 1]" in result.stderr

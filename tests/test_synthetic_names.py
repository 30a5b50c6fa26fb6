"""The hotword evaluation set of the synthetic corpus: homophones espeak-ng says alike, unseen test
names, distractors that sound unlike them, and the corpus with and without name phrases."""

import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))
import synthetic_names  # noqa: E402
from make_synthetic_corpus import DIGITS  # noqa: E402
from synthetic_names import GIVEN, SURNAMES  # noqa: E402


def _phonemes(text: str) -> str:
    result = subprocess.run(["espeak-ng", "-v", "cmn", "-q", "-x", text], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_each_group_is_spoken_alike_by_espeak_and_unlike_the_number_corpus():
    number_sounds = {_phonemes(c) for c in DIGITS + "十百千万年月日点分元个上下午"}
    sounds = set()
    for group in SURNAMES + GIVEN:
        spoken = {_phonemes(c) for c in group}
        assert len(spoken) == 1 and "(en)" not in next(iter(spoken)), (group, spoken)
        sounds |= spoken
    assert sounds.isdisjoint(number_sounds)
    assert _phonemes("章诚") == _phonemes("张成")  # whole names too


def test_test_names_are_rare_and_distractors_sound_unlike_them():
    rng = random.Random(1)
    names, distractors = synthetic_names.held_out_names(rng, 30)
    assert len(names) == len(distractors) == 30 and len(set(names + distractors)) == 60
    heard = [synthetic_names.pronunciation(n) for n in names + distractors]
    for a in heard:  # no listed name sounds like the beginning of another
        assert sum(b[: len(a)] == a for b in heard) == 1
    common = {group[0] for group in SURNAMES + GIVEN}
    assert all(not set(name) & common for name in names + distractors)
    training = [synthetic_names.training_name(rng, set(names)) for _ in range(3000)]
    assert not set(training) & set(names)
    slots = Counter(c in common for name in training for c in name)
    share = slots[True] / (slots[True] + slots[False])
    assert share == pytest.approx(synthetic_names.COMMON_SHARE, abs=0.02)


def test_every_rare_character_is_covered_in_training_names():
    names = synthetic_names.rare_character_names(random.Random(2), 3, excluded={"州伟"})
    counts = Counter(c for name in names for c in name)
    for group in SURNAMES + GIVEN:
        for rare in group[1:]:
            assert counts[rare] >= 3, rare
    assert "州伟" not in names


def _corpus(root: Path, names: bool) -> Path:
    command = [sys.executable, str(SCRIPTS / "make_synthetic_corpus.py"), "--output-root", str(root),
               "--utterances", "6", "2", "2", "--speakers", "3", "1", "1", "--long-utterances", "2",
               "--seed", "7", "--num-workers", "2"]  # fmt: skip
    if names:
        command += [
            "--name-utterances",
            "150",
            "3",
            "8",
            "--test-names",
            "4",
        ]  # 150 >= 28 rare characters x 5
    subprocess.run(command, check=True, capture_output=True)
    return root / "data_aishell"


def test_corpus_with_names_keeps_the_other_utterances_and_holds_the_test_names_out(tmp_path):
    plain, named = _corpus(tmp_path / "plain", False), _corpus(tmp_path / "named", True)
    transcript = "transcript/aishell_transcript_v0.8.txt"
    plain_lines = (plain / transcript).read_text(encoding="utf-8").splitlines()
    named_lines = (named / transcript).read_text(encoding="utf-8").splitlines()
    assert named_lines[: len(plain_lines)] == plain_lines  # number phrases unchanged
    for wav in plain.glob("wav/*/*/*.wav"):
        assert wav.read_bytes() == (named / wav.relative_to(plain)).read_bytes()
    texts = {line.split()[0]: line.split()[1] for line in named_lines}
    split_of = {wav.stem: wav.parts[-3] for wav in named.glob("wav/*/*/*.wav")}
    assert sorted(split_of) == sorted(texts)
    hotwords = (named / "hotwords" / "test_names.txt").read_text(encoding="utf-8").split()
    assert len(hotwords) == 8
    test_texts = [t for u, t in texts.items() if split_of[u] == "test_names"]
    train_texts = [t for u, t in texts.items() if split_of[u] == "train"]
    said = {h for h in hotwords if any(h in t for t in test_texts)}
    assert len(test_texts) == 8 and all(any(h in t for h in hotwords) for t in test_texts)
    assert len(said) == 4  # the test names; the other four are distractors
    assert not any(h in t for h in hotwords for t in train_texts)  # unseen in training
    rare = {c for group in SURNAMES + GIVEN for c in group[1:]}
    assert rare <= set("".join(train_texts))  # every rare character is in the training vocabulary


def test_names_unlike_a_list_keep_it_first_and_never_sound_like_it():
    listed = ["章诚", "洲语终"]
    names = synthetic_names.names_unlike(listed, 1000, seed=3)
    assert names[:2] == listed and len(set(names)) == 1000
    heard = {synthetic_names.pronunciation(n) for n in listed}
    assert not any(synthetic_names.pronunciation(n) in heard for n in names[2:])

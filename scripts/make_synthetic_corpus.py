"""Speak Mandarin sentences with espeak-ng into an AISHELL-1-shaped corpus tree.

Writes ``<output-root>/data_aishell/wav/{train,dev,test}/<speaker>/BAC009<speaker>W<nnnn>.wav`` and
``<output-root>/data_aishell/transcript/aishell_transcript_v0.8.txt``, the layout
``scripts/prep_aishell1.py`` reads, so the real preparation runs on it unchanged.

A "speaker" is one espeak-ng setting of the Mandarin voice (``cmn``): a voice variant, a speed and a
pitch. The test measures voices the model never heard (leave-variants-out): dev and test speakers use
voice variants that never occur in train (``DEV_VARIANTS``, ``TEST_VARIANTS``; every other variant
espeak-ng ships is a training voice), and test speakers speak at rates and pitches outside the training
ranges. Each utterance gets a little white noise at ``--snr-db``. Sentences come from ``--sentences``:
``numbers`` (the default: a built-in generator of number, date, time and price phrases over ~30
characters) or a text file with one sentence per line, optionally preceded by an utterance id (e.g. an
AISHELL-1 transcript file), restricted with ``--top-chars N`` to the sentences that use only the N most
frequent characters of the file. With ``numbers``, a fourth split, ``test_long`` (``--long-utterances``),
has the test speakers say compositions longer than any training phrase: a date followed by a time, a
long digit string, a count followed by a price. With ``--name-utterances TRAIN DEV TEST``, train and
dev gain phrases with person names and a fifth split, ``test_names`` (test speakers), says names that
never occur in training, written with rare homophones (``synthetic_names.py``); its hotword list (the
test names and as many distractors) goes to ``data_aishell/hotwords/test_names.txt``: the hotword
evaluation (docs/hotwords.md). The name phrases draw from their own random stream, so the other
utterances are the same with or without them.
The same ``--seed`` gives the same corpus; existing wav files are kept on a re-run.

Requires espeak-ng (``make install`` installs it).
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import soundfile
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, also when run through runpy
import synthetic_names  # noqa: E402

SPLITS = ("train", "dev", "test")
LONG_SPLIT = "test_long"
NAMES_SPLIT = "test_names"
HOTWORD_LIST = Path("data_aishell") / "hotwords" / f"{NAMES_SPLIT}.txt"
RARE_CHARACTER_OCCURRENCES = 5  # training names with each rare name character, at least
DIGITS = "零一二三四五六七八九"
# Held-out voice variants: everyday male and female voices, a Klatt voice and a whisper among them.
DEV_VARIANTS = ("m4", "f3", "Andy", "klatt5", "Gene2", "linda", "robosoft3", "iven2")
TEST_VARIANTS = ("m8", "Annie", "Alicia", "benjamin", "klatt3", "steph2", "Mr", "whisperf")
# Speaking rate (words per minute) and pitch (0-99) of espeak-ng: train draws inside the ranges, test
# speakers outside them.
TRAIN_SPEEDS, TRAIN_PITCHES = (130, 190), (30, 75)
TEST_SPEEDS, TEST_PITCHES = ((112, 124), (196, 208)), ((12, 24), (81, 93))
LONGEST_TRAINING_PHRASE = 12  # characters; number_phrase never says more


def chinese_number(value: int) -> str:
    """0 <= value < 100000 in Mandarin characters (2305 -> 二千三百零五, 15 -> 十五)."""
    if value == 0:
        return "零"
    units = [(10000, "万"), (1000, "千"), (100, "百"), (10, "十"), (1, "")]
    text, pending_zero = "", False
    for size, unit in units:
        digit = value // size % 10
        if digit == 0:
            pending_zero = bool(text)
            continue
        if pending_zero:
            text += "零"
            pending_zero = False
        text += ("" if digit == 1 and size == 10 and not text else DIGITS[digit]) + unit
    return text


def _year(rng: random.Random) -> str:
    return "".join(DIGITS[int(d)] for d in str(rng.randint(1950, 2030)))


def _day(rng: random.Random) -> str:
    return f"{chinese_number(rng.randint(1, 12))}月{chinese_number(rng.randint(1, 28))}日"


def _full_date(rng: random.Random) -> str:
    return f"{_year(rng)}年{_day(rng)}"


def _time(rng: random.Random) -> str:
    part = rng.choice(["上午", "下午"])
    return f"{part}{chinese_number(rng.randint(1, 12))}点{chinese_number(rng.randint(1, 59))}分"


def _price(rng: random.Random, highest: int) -> str:
    return f"{chinese_number(rng.randint(1, highest))}元"


def _count(rng: random.Random, highest: int) -> str:
    return f"{chinese_number(rng.randint(2, highest))}个"


def _digits(rng: random.Random, fewest: int, most: int) -> str:
    return "".join(rng.choice(DIGITS) for _ in range(rng.randint(fewest, most)))


def _short_part(rng: random.Random) -> str:
    """A short phrase that a composition joins: a day, a time, a price, a count or 3-5 digits."""
    kind = rng.randrange(5)
    if kind == 0:
        return _day(rng)
    if kind == 1:
        return _time(rng)
    if kind == 2:
        return _price(rng, 999)
    if kind == 3:
        return _count(rng, 99)
    return _digits(rng, 3, 5)


def number_phrase(rng: random.Random) -> str:
    """One random date, time, price, count or digit-string phrase, or (one in six) a composition of
    two short ones (e.g. a day and a time, a count and a price) of at most
    ``LONGEST_TRAINING_PHRASE`` characters."""
    kind = rng.randrange(6)
    if kind == 0:
        return _full_date(rng)
    if kind == 1:
        return _time(rng)
    if kind == 2:
        return _price(rng, 99999)
    if kind == 3:
        return _count(rng, 999)
    if kind == 4:
        return _digits(rng, 3, 7)
    while True:
        text = _short_part(rng) + _short_part(rng)
        if len(text) <= LONGEST_TRAINING_PHRASE:
            return text


def long_phrase(rng: random.Random) -> str:
    """A composition longer than any ``number_phrase``: a date and a time, a digit string of 13-18
    digits, or a count and a price."""
    while True:
        kind = rng.randrange(3)
        if kind == 0:
            text = _full_date(rng) + _time(rng)
        elif kind == 1:
            text = _digits(rng, 13, 18)
        else:
            text = _count(rng, 999) + _price(rng, 99999)
        if len(text) > LONGEST_TRAINING_PHRASE:
            return text


def sentences_from_file(path: Path, top_chars: Optional[int], max_chars: int) -> List[str]:
    """Sentences of a text file (an optional leading id dropped), spaces removed, filtered."""
    sentences = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(maxsplit=1)
        if len(parts) == 2 and parts[0].isascii():
            parts = parts[1:]
        text = "".join("".join(parts).split())
        if text and len(text) <= max_chars:
            sentences.append(text)
    if top_chars:
        frequent = {c for c, _ in Counter(c for s in sentences for c in s).most_common(top_chars)}
        sentences = [s for s in sentences if set(s) <= frequent]
    if not sentences:
        raise ValueError(
            f"no sentence of {path} is left after --top-chars {top_chars} --max-chars {max_chars}"
        )
    return sentences


def espeak_variants() -> List[str]:
    """The voice variants this espeak-ng ships (``espeak-ng --voices=variant``), sorted."""
    listing = subprocess.run(
        ["espeak-ng", "--voices=variant"], check=True, capture_output=True, text=True
    ).stdout.splitlines()[1:]
    return sorted(line.split()[4].removeprefix("!v/") for line in listing if len(line.split()) > 4)


def _outside(rng: random.Random, ranges: Tuple[Tuple[int, int], ...]) -> int:
    return rng.randint(*rng.choice(ranges))


def make_speakers(
    rng: random.Random, counts: Tuple[int, int, int], variants: List[str]
) -> List[List[Tuple[str, int, int]]]:
    """(variant, speed, pitch) settings for train, dev and test.

    Train cycles through the training variants (every one of ``variants`` not held out) at speeds and
    pitches drawn inside the training ranges; dev cycles through ``DEV_VARIANTS`` and test through
    ``TEST_VARIANTS``, test at speeds and pitches outside the training ranges.
    """
    held_out = set(DEV_VARIANTS) | set(TEST_VARIANTS)
    missing = held_out - set(variants)
    if missing:
        raise ValueError(f"this espeak-ng lacks the held-out voice variants {sorted(missing)}")
    train_variants = [v for v in variants if v not in held_out]
    rng.shuffle(train_variants)
    train = [
        (train_variants[i % len(train_variants)], rng.randint(*TRAIN_SPEEDS), rng.randint(*TRAIN_PITCHES))
        for i in range(counts[0])
    ]
    dev = [
        (DEV_VARIANTS[i % len(DEV_VARIANTS)], rng.randint(*TRAIN_SPEEDS), rng.randint(*TRAIN_PITCHES))
        for i in range(counts[1])
    ]
    test = [
        (TEST_VARIANTS[i % len(TEST_VARIANTS)], _outside(rng, TEST_SPEEDS), _outside(rng, TEST_PITCHES))
        for i in range(counts[2])
    ]
    return [train, dev, test]


def synthesise(text: str, setting: Tuple[str, int, int], path: Path, snr_db: float, seed: int) -> None:
    """Speak ``text`` into ``path`` (atomically) with white noise at ``snr_db``."""
    variant, speed, pitch = setting
    with tempfile.NamedTemporaryFile(suffix=".wav", dir=path.parent) as raw:
        command = [
            "espeak-ng",
            "-v",
            f"cmn+{variant}",
            "-s",
            str(speed),
            "-p",
            str(pitch),
            "-w",
            raw.name,
            "--",
            text,
        ]
        subprocess.run(command, check=True, capture_output=True)
        samples, rate = soundfile.read(raw.name, dtype="int16")
    # Exact arithmetic from espeak-ng's 16-bit samples to ours: an integer signal power, float64
    # noise and our own rounding, so that the same seed writes the same bytes on any machine and
    # under any load (no float32 reduction whose last bits depend on how it is vectorised).
    signal = samples.astype(np.int64)
    signal_power = int(np.dot(signal, signal)) / signal.size if signal.size else 0.0
    noise_power = signal_power / (10 ** (snr_db / 10))
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(noise_power), size=signal.shape)
    noisy = np.clip(np.rint(signal + noise), -32768, 32767).astype(np.int16)
    temporary = path.with_name(path.name + ".tmp.wav")
    soundfile.write(str(temporary), noisy, rate, subtype="PCM_16")
    os.replace(temporary, path)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output-root", type=Path, required=True, help="corpus folder (data_aishell/ goes in it)"
    )
    parser.add_argument(
        "--utterances",
        type=int,
        nargs=3,
        default=[1500, 150, 150],
        metavar=("TRAIN", "DEV", "TEST"),
        help="utterances synthesised for each split (default: 1500 150 150)",
    )
    parser.add_argument(
        "--speakers",
        type=int,
        nargs=3,
        default=[80, 8, 8],
        metavar=("TRAIN", "DEV", "TEST"),
        help="speakers (voice variant, rate and pitch settings) of each split; dev and test voice "
        "variants never occur in train (default: 80 8 8)",
    )
    parser.add_argument(
        "--long-utterances",
        type=int,
        default=150,
        help="utterances of the test_long split (test speakers, phrases longer than any training phrase; "
        "--sentences numbers only; 0: none)",
    )
    parser.add_argument(
        "--name-utterances",
        type=int,
        nargs=3,
        default=[0, 0, 0],
        metavar=("TRAIN", "DEV", "TEST"),
        help="phrases with person names added to train and dev, and utterances of the test_names split "
        "(test speakers, names unseen in training, rare homophone characters); --sentences numbers "
        "only (default: 0 0 0, none)",
    )
    parser.add_argument(
        "--test-names", type=int, default=30, help="distinct names of the test_names split (and distractors)"
    )
    parser.add_argument(
        "--sentences", default="numbers", help="'numbers' (built-in generator) or a text file"
    )
    parser.add_argument(
        "--top-chars", type=int, default=None, help="text file: keep sentences of the N most frequent chars"
    )
    parser.add_argument(
        "--max-chars", type=int, default=20, help="text file: longest sentence kept, in characters"
    )
    parser.add_argument(
        "--snr-db", type=float, default=30.0, help="signal-to-noise ratio of the added white noise"
    )
    parser.add_argument("--seed", type=int, default=1, help="seed for sentences, speakers and noise")
    parser.add_argument(
        "--num-workers", type=int, default=os.cpu_count() or 1, help="parallel espeak-ng calls"
    )
    return parser.parse_args(argv)


def _write_text_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _utterance(output_root: Path, split: str, number: int, index: int, speakers: int) -> Tuple[str, Path]:
    """(utterance id, wav path) of utterance ``index`` of a split (``number`` numbers its speakers)."""
    speaker = f"S{number * 1000 + index % speakers + 1:04d}"
    utt_id = f"BAC009{speaker}W{index // speakers + 1:04d}"
    return utt_id, output_root / "data_aishell" / "wav" / split / speaker / f"{utt_id}.wav"


def _name_jobs(args: argparse.Namespace, speakers, plan) -> Tuple[list, List[str]]:
    """Synthesis jobs and transcript lines of the name phrases (train, dev, then test_names), and
    the test split's hotword list written (atomically)."""
    rng = random.Random(f"names-{args.seed}")
    test_names, distractors = synthetic_names.held_out_names(rng, args.test_names)
    held_out = set(test_names) | set(distractors)
    jobs, lines = [], []
    counts = [count for _, count, *_ in plan[:3]]
    splits = [(SPLITS[0], 0, counts[0]), (SPLITS[1], 1, counts[1]), (NAMES_SPLIT, len(plan), 0)]
    # Every rare character a few times in train (so that it is in the vocabulary), then random names.
    covering = synthetic_names.rare_character_names(rng, RARE_CHARACTER_OCCURRENCES, held_out)
    for (split, number, first), count, split_speakers in zip(
        splits, args.name_utterances, [speakers[0], speakers[1], speakers[2]], strict=True
    ):
        for index in range(first, first + count):
            if split == NAMES_SPLIT:
                name = test_names[index % len(test_names)]
            elif split == SPLITS[0] and index - first < len(covering):
                name = covering[index - first]
            else:
                name = synthetic_names.training_name(rng, held_out)
            text = synthetic_names.name_phrase(rng, name, _short_part)
            utt_id, path = _utterance(args.output_root, split, number, index, len(split_speakers))
            setting = split_speakers[index % len(split_speakers)]
            jobs.append((text, setting, path, args.snr_db, rng.randrange(2**31)))
            lines.append(f"{utt_id} {text}\n")
    hotwords = test_names + distractors
    rng.shuffle(hotwords)
    _write_text_atomically(args.output_root / HOTWORD_LIST, "".join(f"{name}\n" for name in hotwords))
    return jobs, lines


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: run `make install` (or apt-get install espeak-ng)")
    rng = random.Random(args.seed)
    if args.sentences == "numbers":
        pool = None
    else:
        pool = sentences_from_file(Path(args.sentences), args.top_chars, args.max_chars)
    if not all(0 < count < 1000 for count in args.speakers):
        raise SystemExit(f"--speakers: 1 to 999 per split, not {args.speakers}")
    speakers = make_speakers(rng, tuple(args.speakers), espeak_variants())
    plan = list(zip(SPLITS, args.utterances, speakers, (number_phrase,) * 3, strict=True))
    if pool is None and args.long_utterances > 0:
        plan.append((LONG_SPLIT, args.long_utterances, speakers[2], long_phrase))
    jobs, transcript = [], []
    for number, (split, count, split_speakers, phrase) in enumerate(plan):
        for index in range(count):
            utt_id, path = _utterance(args.output_root, split, number, index, len(split_speakers))
            text = phrase(rng) if pool is None else rng.choice(pool)
            setting = split_speakers[index % len(split_speakers)]
            jobs.append((text, setting, path, args.snr_db, rng.randrange(2**31)))
            transcript.append(f"{utt_id} {text}\n")
    if pool is None and any(args.name_utterances):
        name_jobs, name_lines = _name_jobs(args, speakers, plan)
        jobs += name_jobs
        transcript += name_lines
    for *_, path, _, _ in jobs:
        path.parent.mkdir(parents=True, exist_ok=True)
    todo = [job for job in jobs if not job[2].is_file()]
    with ThreadPoolExecutor(args.num_workers) as executor:
        list(
            tqdm(
                executor.map(lambda job: synthesise(*job), todo),
                total=len(todo),
                desc="espeak-ng",
                file=sys.stderr,
            )
        )
    transcript_path = args.output_root / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt"
    _write_text_atomically(transcript_path, "".join(transcript))
    print(f"{len(jobs)} utterances ({len(todo)} synthesised now) in {args.output_root / 'data_aishell'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

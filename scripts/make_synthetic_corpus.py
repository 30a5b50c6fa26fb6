"""Speak Mandarin sentences with espeak-ng into an AISHELL-1-shaped corpus tree.

Writes ``<output-root>/data_aishell/wav/{train,dev,test}/<speaker>/BAC009<speaker>W<nnnn>.wav`` and
``<output-root>/data_aishell/transcript/aishell_transcript_v0.8.txt``, the layout
``scripts/prep_aishell1.py`` reads, so the real preparation runs on it unchanged.

A "speaker" is one espeak-ng setting of the Mandarin voice (``cmn``): a voice variant, a speed and a
pitch; dev and test speakers never occur in train. Each utterance gets a little white noise at
``--snr-db``. Sentences come from ``--sentences``: ``numbers`` (the default: a built-in generator of
number, date, time and price phrases over ~30 characters) or a text file with one sentence per line,
optionally preceded by an utterance id (e.g. an AISHELL-1 transcript file), restricted
with ``--top-chars N`` to the sentences that use only the N most frequent characters of the file.
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

SPLITS = ("train", "dev", "test")
DIGITS = "零一二三四五六七八九"
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")


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


def number_phrase(rng: random.Random) -> str:
    """One random date, time, price, count or digit-string phrase."""
    kind = rng.randrange(5)
    if kind == 0:
        year = "".join(DIGITS[int(d)] for d in str(rng.randint(1950, 2030)))
        return f"{year}年{chinese_number(rng.randint(1, 12))}月{chinese_number(rng.randint(1, 28))}日"
    if kind == 1:
        part = rng.choice(["上午", "下午"])
        return f"{part}{chinese_number(rng.randint(1, 12))}点{chinese_number(rng.randint(1, 59))}分"
    if kind == 2:
        return f"{chinese_number(rng.randint(1, 99999))}元"
    if kind == 3:
        return f"{chinese_number(rng.randint(2, 999))}个"
    return "".join(rng.choice(DIGITS) for _ in range(rng.randint(3, 7)))


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


def make_speakers(rng: random.Random, counts: Tuple[int, int, int]) -> List[List[Tuple[str, int, int]]]:
    """Disjoint (variant, speed, pitch) settings for train, dev and test."""
    settings = [(v, s, p) for v in VARIANTS for s in (130, 150, 170, 190) for p in (30, 45, 60, 75)]
    rng.shuffle(settings)
    if sum(counts) > len(settings):
        raise ValueError(f"at most {len(settings)} speakers in total, asked for {sum(counts)}")
    first_dev, first_test = counts[0], counts[0] + counts[1]
    return [settings[:first_dev], settings[first_dev:first_test], settings[first_test : sum(counts)]]


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
        default=[12, 3, 3],
        metavar=("TRAIN", "DEV", "TEST"),
        help="speakers (voice, rate and pitch settings) of each split; no speaker is in two splits "
        "(default: 12 3 3)",
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


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: run `make install` (or apt-get install espeak-ng)")
    rng = random.Random(args.seed)
    if args.sentences == "numbers":
        pool = None
    else:
        pool = sentences_from_file(Path(args.sentences), args.top_chars, args.max_chars)
    speakers = make_speakers(rng, tuple(args.speakers))
    jobs, transcript = [], []
    for split, count, split_speakers in zip(SPLITS, args.utterances, speakers, strict=True):
        for index in range(count):
            speaker_index = index % len(split_speakers)
            speaker = f"S{SPLITS.index(split) * 100 + speaker_index + 1:04d}"
            utt_id = f"BAC009{speaker}W{index // len(split_speakers) + 1:04d}"
            text = number_phrase(rng) if pool is None else rng.choice(pool)
            path = args.output_root / "data_aishell" / "wav" / split / speaker / f"{utt_id}.wav"
            jobs.append((text, split_speakers[speaker_index], path, args.snr_db, rng.randrange(2**31)))
            transcript.append(f"{utt_id} {text}\n")
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
    transcript_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = transcript_path.with_name(transcript_path.name + ".tmp")
    temporary.write_text("".join(transcript), encoding="utf-8")
    os.replace(temporary, transcript_path)
    print(f"{len(jobs)} utterances ({len(todo)} synthesised now) in {args.output_root / 'data_aishell'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

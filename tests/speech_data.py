"""Tiny speech-to-text datasets in the task's on-disk layout, made inside the tests.

Each character of a small vocabulary is rendered as a run of frames of its own random 80-bin
spectral template plus noise, so a model can learn to count and classify characters. Features go
into an uncompressed zip of .npy files addressed as ``fbank80.zip:<offset>:<length>`` (relative to
the data folder), with TSV
manifests, a fairseq dictionary and the YAML data config, as the AISHELL-1 preparation writes them.
"""

import csv
import subprocess
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import soundfile

from cif_plugin.tasks.feature_zip import write_feature_zip

NUM_BINS = 80
CHARACTERS = "零一二三四五六七八九"
AISHELL_VOCABULARY_SIZE = 4230  # dict.txt entries of AISHELL-1; fairseq adds 4 specials


def write_dataset(
    root: Path,
    splits: Dict[str, int],
    seed: int = 0,
    min_chars: int = 2,
    max_chars: int = 6,
    frames_per_char: Sequence[int] = (14, 22),
    noise: float = 0.3,
) -> Path:
    """Write ``{split: number of utterances}`` under ``root``; return ``root``."""
    rng = np.random.default_rng(seed)
    templates = rng.normal(0.0, 1.0, size=(len(CHARACTERS), NUM_BINS)).astype(np.float32) * 2.0
    root.mkdir(parents=True, exist_ok=True)
    utterances = {}
    rows = {split: [] for split in splits}  # (id, text, speaker) per split
    for split, count in splits.items():
        for index in range(count):
            chars = rng.integers(0, len(CHARACTERS), size=rng.integers(min_chars, max_chars + 1))
            segments = [
                templates[c] + noise * rng.normal(size=(rng.integers(*frames_per_char), NUM_BINS))
                for c in chars
            ]
            silence = noise * rng.normal(size=(rng.integers(4, 10), NUM_BINS))
            features = np.concatenate([silence, *segments, silence]).astype(np.float32)
            utt_id = f"{split}_{index:04d}"
            utterances[utt_id] = features
            rows[split].append((utt_id, " ".join(CHARACTERS[c] for c in chars), f"S{index % 3}"))
    addresses = write_feature_zip(root / "fbank80.zip", utterances.items(), relative_to=root)
    for split, split_rows in rows.items():
        with open(root / f"{split}.tsv", "w", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n")
            writer.writerow(["id", "audio", "n_frames", "tgt_text", "speaker"])
            for utt_id, text, speaker in split_rows:
                writer.writerow([utt_id, addresses[utt_id], len(utterances[utt_id]), text, speaker])
    _write_dictionary(root / "dict.txt")
    write_data_config(root, utterance_cmvn=True)
    return root


def write_aishell_sized_data_dir(root: Path) -> Path:
    """A data folder (no audio) with a dictionary the size of AISHELL-1's, 4,234 symbols with the
    specials (model sizes depend only on the count)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dict.txt").write_text("".join(f"c{i} 1\n" for i in range(AISHELL_VOCABULARY_SIZE)))
    write_data_config(root)
    return root


def write_data_config(root: Path, utterance_cmvn: bool = False) -> None:
    """config.yaml for 80-bin features and ``dict.txt``, optionally with utterance CMVN."""
    transforms = "transforms:\n  '*':\n  - utterance_cmvn\n" if utterance_cmvn else ""
    text = f"input_channels: 1\ninput_feat_per_channel: {NUM_BINS}\nvocab_filename: dict.txt\n{transforms}"
    (root / "config.yaml").write_text(text)


def _write_dictionary(path: Path) -> None:
    path.write_text("".join(f"{c} {100 - i}\n" for i, c in enumerate(CHARACTERS)))


def write_spoken_recording(folder: Path, phrases=("一二三", "四五六七", "八九")):
    """espeak-ng's Mandarin for each phrase, each after 1.5 s of silence, and 1 s at the end, in
    ``folder``/long.wav (22.05 kHz); returns the path and each phrase's (start, end) seconds."""
    pieces, placed, rate = [], [], None
    for index, text in enumerate(phrases):
        wav = folder / f"p{index}.wav"
        subprocess.run(
            ["espeak-ng", "-v", "cmn", "-w", str(wav), "--", text], check=True, capture_output=True
        )
        samples, rate = soundfile.read(str(wav))
        start = sum(len(p) for p in pieces) / rate + 1.5
        pieces += [np.zeros(int(1.5 * rate)), samples]
        placed.append((start, start + len(samples) / rate))
    path = folder / "long.wav"
    soundfile.write(str(path), np.concatenate(pieces + [np.zeros(rate)]), rate)
    return path, placed

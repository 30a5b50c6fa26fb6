"""Prepare AISHELL-1 for ``--task speech_to_text_cif`` as the published recipe did (docs/differences.md).

Input: a corpus tree ``<corpus-root>/data_aishell/wav/{train,dev,test}/<speaker>/<id>.wav`` (more
test sets with ``--splits``) with
``<corpus-root>/data_aishell/transcript/aishell_transcript_v0.8.txt`` (lines ``<id> <words ...>``).
Output in ``--output-root``:

- ``fbank80_<split>.zip``: 80-bin Kaldi-compatible log-Mel filterbanks (torchaudio, 25 ms / 10 ms,
  audio resampled to 16 kHz and scaled to 16-bit range), one uncompressed .npy per utterance;
- ``<split>.tsv``: id, audio (``fbank80_<split>.zip:<offset>:<length>``, relative to the output
  folder), n_frames, tgt_text (characters separated by spaces), speaker (characters 7-11 of the id);
  with ``--speed-perturb 0.9,1.0,1.1`` the train split holds each utterance once per factor, the
  perturbed copies named ``sp<factor>-<id>`` (Kaldi's and ESPnet's naming) with the speaker kept and
  features computed from the audio played at that speed (torchaudio's ``speed``: resampled, so the
  pitch moves with the tempo, as sox's ``speed`` in the Kaldi recipes); dev and test are never
  perturbed;
- train augmentation, all off by default (``cif_plugin/tasks/waveform_augment.py``): ``--volume-perturb
  LOW,HIGH`` plays each training utterance (each speed copy) at a random gain, ``--noise-snr LOW,HIGH``
  adds noise at a random SNR, from ``--noise-dir`` (e.g. MUSAN noise) or generated (``--noise-kind``);
  draws depend on ``--augment-seed`` and the utterance id only. ``--time-warp W`` adds SpecAugment time
  warping (``cif_plugin/tasks/time_warp.py``) to the train transforms of ``config.yaml``;
- ``<split>.skipped.tsv``: every utterance left out, and why (no transcript, unreadable or empty
  audio, duration outside ``--min-duration``/``--max-duration``);
- ``dict.txt``: the character vocabulary of the training split, fairseq Dictionary format;
- ``config.yaml``: utterance CMVN everywhere, SpecAugment on train (F=27 N=2, T=50 N=2, as the paper's
  config_Tmask50.yaml). With ``--global-cmvn``, global CMVN instead: the per-bin mean and standard
  deviation of the training features, written to ``global_cmvn.npz`` (what streaming models need:
  docs/streaming.md). The statistics are recomputed on every run, also when the splits are skipped.

The vocabulary counts each training utterance once, so speed perturbation leaves ``dict.txt`` unchanged.

Transcripts are normalised as the reference does: spaces removed (the official transcripts are
word-segmented), lower-cased, one token per character. Characters of dev/test missing from the
training vocabulary are counted and reported per split.

On the real corpus this reproduces the published counts: train 120,098, dev 14,326 and test 7,176
utterances, and a vocabulary of 4,230 characters (4,234 symbols with fairseq's specials).

Splits whose manifest exists are skipped on a re-run (the manifest is written last, atomically, and
the zip is renamed into place only when complete), so an interrupted job resumes where it stopped.
"""

import argparse
import csv
import multiprocessing
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torchaudio
from fairseq.data.audio.audio_utils import get_features_or_waveform
from tqdm import tqdm

from cif_plugin.tasks.fbank_features import NUM_MEL_BINS, SAMPLE_RATE, AudioError, kaldi_fbank, load_waveform
from cif_plugin.tasks.feature_zip import write_feature_zip
from cif_plugin.tasks.waveform_augment import NOISE_KINDS, WaveformAugmenter, noise_files

SPLITS = ("train", "dev", "test")
PERTURBED_ID = re.compile(r"^sp(?P<factor>[0-9.]+)-(?P<original>.+)$")
TRANSCRIPT = Path("data_aishell") / "transcript" / "aishell_transcript_v0.8.txt"
AUGMENTATION_RECORD = "train.augmentation.txt"
NO_AUGMENTATION = "none\n"
CONFIG_YAML = """input_channels: 1
input_feat_per_channel: {bins}
vocab_filename: dict.txt
specaugment:
  freq_mask_F: 27
  freq_mask_N: 2
  time_mask_N: 2
  time_mask_T: 50
  time_mask_p: 1.0
  time_warp_W: 0
transforms:
  '*':
  - utterance_cmvn
  _train:
  - utterance_cmvn
  - specaugment
"""
TIME_WARP_YAML = """time_warp:
  W: {W}
"""


GLOBAL_CMVN_STATS = "global_cmvn.npz"
GLOBAL_CMVN_YAML = f"""global_cmvn:
  stats_npz_path: {GLOBAL_CMVN_STATS}
"""


def data_config(time_warp: int, global_cmvn: bool = False) -> str:
    """config.yaml: utterance CMVN (global CMVN with ``global_cmvn``), SpecAugment on train, time
    warping (W frames) before it if > 0."""
    text = CONFIG_YAML.format(bins=NUM_MEL_BINS)
    if time_warp > 0:
        text = text.replace(
            "  - utterance_cmvn\n  - specaugment", "  - utterance_cmvn\n  - time_warp\n  - specaugment"
        )
        text += TIME_WARP_YAML.format(W=time_warp)
    if global_cmvn:
        text = text.replace("utterance_cmvn", "global_cmvn") + GLOBAL_CMVN_YAML
    return text


def write_global_cmvn(output_root: Path) -> Path:
    """Per-bin mean and standard deviation of every training utterance's frames -> global_cmvn.npz."""
    total, squares, frames = np.zeros(NUM_MEL_BINS), np.zeros(NUM_MEL_BINS), 0
    manifest = output_root / "train.tsv"
    with open(manifest, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    for row in tqdm(rows, desc="global CMVN statistics", unit="utt", mininterval=5):
        features = get_features_or_waveform((output_root / row["audio"]).as_posix()).astype(np.float64)
        total += features.sum(axis=0)
        squares += (features**2).sum(axis=0)
        frames += len(features)
    if frames == 0:
        raise SystemExit(f"{manifest} has no frames to compute global CMVN statistics from")
    mean = total / frames
    std = np.sqrt(np.maximum(squares / frames - mean**2, 1e-8))
    path = output_root / GLOBAL_CMVN_STATS
    temporary = path.with_name(path.name + ".tmp.npz")
    np.savez(temporary, mean=mean.astype(np.float32), std=std.astype(np.float32))
    os.replace(temporary, path)
    return path


def normalise_transcript(words: str) -> List[str]:
    """Remove spaces, lower-case, one token per character."""
    return list("".join(words.split()).lower())


def read_transcripts(path: Path) -> Dict[str, List[str]]:
    """utterance id -> characters, from lines ``<id> <words ...>``."""
    if not path.is_file():
        raise FileNotFoundError(
            f"transcript file {path} not found: is --corpus-root the folder holding data_aishell/?"
        )
    transcripts = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            parts = line.strip().split(maxsplit=1)
            if len(parts) == 2:
                transcripts[parts[0]] = normalise_transcript(parts[1])
    return transcripts


def parse_speed_factors(text: str) -> List[float]:
    """``"0.9,1.0,1.1"`` -> [0.9, 1.0, 1.1]: distinct positive factors, in the given order."""
    try:
        factors = [float(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers such as 0.9,1.0,1.1, got {text!r}"
        ) from None
    if not factors or any(not 0 < factor < 10 for factor in factors) or len(set(factors)) != len(factors):
        raise argparse.ArgumentTypeError(f"expected distinct speed factors in (0, 10), got {text!r}")
    return factors


def parse_range(text: str) -> Tuple[float, float]:
    """``"10,30"`` -> (10.0, 30.0): two numbers, low <= high."""
    try:
        low, high = (float(item) for item in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH such as 10,30, got {text!r}") from None
    if not low <= high:
        raise argparse.ArgumentTypeError(f"expected LOW <= HIGH, got {text!r}")
    return low, high


def perturbed_id(utt_id: str, factor: float) -> str:
    """The id of an utterance played at ``factor`` times its speed: ``sp0.9-<id>``; 1.0 keeps the id."""
    return utt_id if factor == 1.0 else f"sp{factor:g}-{utt_id}"


def original_id(utt_id: str) -> str:
    """``sp0.9-<id>`` -> ``<id>``; an unperturbed id is returned as it is."""
    match = PERTURBED_ID.match(utt_id)
    return match["original"] if match else utt_id


def change_speed(waveform: torch.Tensor, factor: float) -> torch.Tensor:
    """(1, samples) 16 kHz audio played ``factor`` times faster: about samples / factor samples."""
    if factor == 1.0:
        return waveform
    return torchaudio.functional.speed(waveform, SAMPLE_RATE, factor)[0]


def compute_fbank(
    path: Path,
    min_duration: float,
    max_duration: float,
    speeds: Sequence[float] = (1.0,),
    augmenter: Optional[WaveformAugmenter] = None,
) -> List[Union[np.ndarray, str]]:
    """For each of ``speeds``, the (frames, 80) float32 filterbanks of one audio file played at that
    speed (then through ``augmenter``, keyed by the copy's id), or the reason it cannot be used (the
    duration limits apply to the perturbed audio). The file is read once for all speeds."""
    try:
        waveform = load_waveform(path)
    except AudioError as error:
        return [error.reason] * len(speeds)
    results: List[Union[np.ndarray, str]] = []
    for speed in speeds:
        played = change_speed(waveform, speed)
        duration = played.shape[1] / SAMPLE_RATE
        if min_duration <= duration <= max_duration:
            if augmenter is not None:
                played = augmenter(perturbed_id(path.stem, speed), played)
            results.append(kaldi_fbank(played))
        else:
            results.append(f"duration {duration:.2f} s outside [{min_duration}, {max_duration}]")
    return results


def _worker_init() -> None:
    torch.set_num_threads(1)


def _fbank_job(
    job: Tuple[str, str, float, float, List[float], Optional[WaveformAugmenter]],
) -> List[Tuple[str, Union[np.ndarray, str]]]:
    utt_id, path, min_duration, max_duration, speeds, augmenter = job
    results = compute_fbank(Path(path), min_duration, max_duration, speeds, augmenter)
    return [(perturbed_id(utt_id, speed), result) for speed, result in zip(speeds, results, strict=True)]


def _atomic_write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _write_tsv(path: Path, header: List[str], rows: List[List]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(
            handle, delimiter="\t", quoting=csv.QUOTE_NONE, lineterminator="\n", escapechar="\\"
        )
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(temporary, path)


def read_manifest(path: Path) -> Tuple[List[List[str]], List[float]]:
    """The transcripts of a manifest, each utterance once (its speed-perturbed copies left out),
    and the speed factors its ids show, sorted."""
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    factors = sorted({float(m["factor"]) if (m := PERTURBED_ID.match(row["id"])) else 1.0 for row in rows})
    texts = {original_id(row["id"]): row["tgt_text"].split() for row in rows}
    return list(texts.values()), factors


def prepare_split(
    split: str, corpus_root: Path, output_root: Path, transcripts: Dict[str, List[str]], args
) -> List[List[str]]:
    """Write the zip, the skipped report and the manifest of one split; return its transcripts,
    each utterance once (speed-perturbed copies share their original's)."""
    wav_files = sorted((corpus_root / "data_aishell" / "wav" / split).glob("*/*.wav"))
    if not wav_files:
        raise FileNotFoundError(f"no wav files under {corpus_root / 'data_aishell' / 'wav' / split}")
    factors = speed_factors(split, args)
    augmenter = args.augmenter if split == "train" and args.augmenter.active else None
    skipped: List[List[str]] = []
    jobs = []  # one per audio file: every speed of it is computed from one read
    for path in wav_files:
        if path.stem in transcripts:
            jobs.append((path.stem, str(path), args.min_duration, args.max_duration, factors, augmenter))
        else:
            skipped.append([path.stem, str(path), "no transcript"])
    frame_counts: Dict[str, int] = {}
    path_by_id = {perturbed_id(utt_id, factor): path for utt_id, path, *_ in jobs for factor in factors}

    def features() -> Iterator[Tuple[str, np.ndarray]]:
        with multiprocessing.Pool(args.num_workers, initializer=_worker_init) as pool:
            results = pool.imap(_fbank_job, jobs, chunksize=8)
            for file_results in tqdm(
                results, total=len(jobs), desc=f"fbank {split}", unit="file", file=sys.stderr
            ):
                for utt_id, result in file_results:
                    if isinstance(result, str):
                        skipped.append([utt_id, path_by_id[utt_id], result])
                    else:
                        frame_counts[utt_id] = len(result)
                        yield utt_id, result

    addresses = write_feature_zip(output_root / f"fbank80_{split}.zip", features(), relative_to=output_root)
    rows = []
    for utt_id in path_by_id:
        if utt_id in addresses:
            original = original_id(utt_id)
            text = " ".join(transcripts[original])
            rows.append([utt_id, addresses[utt_id], frame_counts[utt_id], text, original[6:11]])
    _write_tsv(output_root / f"{split}.skipped.tsv", ["id", "path", "reason"], skipped)
    _write_tsv(output_root / f"{split}.tsv", ["id", "audio", "n_frames", "tgt_text", "speaker"], rows)
    print(f"{split}: {len(rows)} utterances written, {len(skipped)} skipped (see {split}.skipped.tsv)")
    for reason, count in Counter(row[2].split(":")[0] for row in skipped).most_common():
        print(f"  skipped: {count} x {reason}")
    return list({original_id(row[0]): row[3].split() for row in rows}.values())


def recorded_augmentation(output_root: Path) -> str:
    """The augmentation a prepared train split was made with (none when nothing is recorded)."""
    record = output_root / AUGMENTATION_RECORD
    return record.read_text(encoding="utf-8") if record.is_file() else NO_AUGMENTATION


def split_name(text: str) -> str:
    """A split is a folder name of letters, digits and underscores (it names the zip and manifest)."""
    if not re.fullmatch(r"\w+", text, re.ASCII):
        raise argparse.ArgumentTypeError(f"{text!r} is not a split name (letters, digits, underscores)")
    return text


def speed_factors(split: str, args) -> List[float]:
    """The speeds a split is prepared at: ``--speed-perturb``'s for train, 1.0 otherwise."""
    return args.speed_perturb if split == "train" and args.speed_perturb else [1.0]


def write_vocabulary(path: Path, texts: List[List[str]]) -> Dict[str, int]:
    """fairseq Dictionary file: ``<char> <count>`` by descending count (ties by character)."""
    counts = Counter(char for text in texts for char in text)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    _atomic_write_text(path, "".join(f"{char} {count}\n" for char, count in ordered))
    return dict(ordered)


def report_oov(split: str, texts: List[List[str]], vocabulary: Dict[str, int]) -> None:
    total = sum(len(text) for text in texts)
    oov = Counter(char for text in texts for char in text if char not in vocabulary)
    share = 100.0 * sum(oov.values()) / max(total, 1)
    listed = " ".join(f"{char}:{count}" for char, count in oov.most_common(10))
    print(f"{split}: {sum(oov.values())} of {total} characters ({share:.2f}%) are out of vocabulary {listed}")


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus-root", type=Path, required=True, help="folder that holds data_aishell/")
    parser.add_argument("--output-root", type=Path, required=True, help="where manifests, zips and config go")
    parser.add_argument(
        "--splits",
        nargs="+",
        type=split_name,
        default=list(SPLITS),
        help="splits to prepare: folders of data_aishell/wav/ (default: train dev test; an extra test set "
        "such as test_long is prepared as dev and test are)",
    )
    parser.add_argument(
        "--num-workers", type=int, default=os.cpu_count() or 1, help="feature processes (default: all cores)"
    )
    parser.add_argument("--min-duration", type=float, default=0.3, help="shortest utterance kept, seconds")
    parser.add_argument("--max-duration", type=float, default=30.0, help="longest utterance kept, seconds")
    parser.add_argument("--overwrite", action="store_true", help="redo splits whose manifest already exists")
    parser.add_argument(
        "--speed-perturb",
        type=parse_speed_factors,
        default=None,
        metavar="FACTORS",
        help="train split only: also write each utterance played at these speeds, e.g. 0.9,1.0,1.1 "
        "(copies named sp0.9-<id>; include 1.0 to keep the original). Default: no perturbation",
    )
    augment = parser.add_argument_group("train augmentation (off by default; the same draws on a re-run)")
    augment.add_argument(
        "--volume-perturb",
        type=parse_range,
        metavar="LOW,HIGH",
        help="play each training utterance at a gain drawn uniformly from LOW..HIGH, e.g. 0.125,2 "
        "(utterance CMVN removes a gain again: useful with global or no CMVN)",
    )
    augment.add_argument(
        "--noise-snr",
        type=parse_range,
        metavar="LOW,HIGH",
        help="add noise to each training utterance at an SNR (dB) drawn uniformly from LOW..HIGH, e.g. 10,30",
    )
    augment.add_argument(
        "--noise-dir",
        type=Path,
        help="folder of .wav/.flac noise (searched recursively) for --noise-snr; default: generated noise",
    )
    augment.add_argument(
        "--noise-kind",
        choices=NOISE_KINDS,
        default="white",
        help="generated noise for --noise-snr without --noise-dir (default: white)",
    )
    augment.add_argument(
        "--augment-seed", type=int, default=1, help="seed of the augmentation draws (default 1)"
    )
    augment.add_argument(
        "--time-warp",
        type=int,
        default=0,
        metavar="W",
        help="SpecAugment time warping of train features by up to W frames, in config.yaml (default 0: off)",
    )
    parser.add_argument(
        "--global-cmvn",
        action="store_true",
        help="normalise with the training set's per-bin mean and deviation (global_cmvn.npz) instead of "
        "each utterance's own: what streaming models need",
    )
    args = parser.parse_args(argv)
    if args.time_warp < 0:
        parser.error(f"--time-warp must be >= 0, got {args.time_warp}")
    if args.volume_perturb is not None and args.volume_perturb[0] <= 0:
        parser.error(f"--volume-perturb gains must be positive, got {args.volume_perturb}")
    if args.noise_dir is not None and args.noise_snr is None:
        parser.error("--noise-dir needs --noise-snr LOW,HIGH")
    try:
        paths = noise_files(args.noise_dir) if args.noise_dir is not None else ()
    except FileNotFoundError as error:
        parser.error(str(error))
    args.augmenter = WaveformAugmenter(
        args.volume_perturb, args.noise_snr, args.noise_kind, paths, args.augment_seed
    )
    return args


def augmentation_record(args) -> str:
    """The train augmentation settings, as ``train.augmentation.txt`` records them."""
    if not args.augmenter.active:
        return NO_AUGMENTATION
    noise = None
    if args.noise_snr is not None:
        noise = (
            f"snr {args.noise_snr} from {args.noise_dir}"
            if args.noise_dir
            else f"snr {args.noise_snr} {args.noise_kind}"
        )
    return f"volume {args.volume_perturb}; noise {noise}; seed {args.augment_seed}\n"


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    args.output_root.mkdir(parents=True, exist_ok=True)
    transcripts = read_transcripts(args.corpus_root / TRANSCRIPT)
    # The vocabulary comes from train, so train goes first whenever it is asked for.
    splits = sorted(dict.fromkeys(args.splits), key=lambda split: split != "train")
    texts = {}
    for split in splits:
        manifest = args.output_root / f"{split}.tsv"
        if manifest.is_file() and not args.overwrite:
            texts[split], found = read_manifest(manifest)
            wanted = sorted(speed_factors(split, args))
            if found != wanted:
                raise SystemExit(
                    f"{manifest} holds speed factors {found}, not the {wanted} asked for: "
                    "pass --overwrite to prepare it again"
                )
            if split == "train" and recorded_augmentation(args.output_root) != augmentation_record(args):
                raise SystemExit(
                    f"{manifest} was prepared with augmentation {recorded_augmentation(args.output_root)!r}, "
                    f"not the {augmentation_record(args)!r} asked for: pass --overwrite to prepare it again"
                )
            print(f"{split}: {manifest} exists, skipped (--overwrite redoes it)")
        else:
            if split == "train":
                _atomic_write_text(args.output_root / AUGMENTATION_RECORD, augmentation_record(args))
            texts[split] = prepare_split(split, args.corpus_root, args.output_root, transcripts, args)
    dictionary = args.output_root / "dict.txt"
    if "train" in texts:
        vocabulary = write_vocabulary(dictionary, texts["train"])
        print(f"vocabulary: {len(vocabulary)} characters from train -> {dictionary}")
    elif dictionary.is_file():
        vocabulary = {
            line.rsplit(" ", 1)[0]: 0 for line in dictionary.read_text(encoding="utf-8").splitlines()
        }
    else:
        raise FileNotFoundError(f"{dictionary} does not exist yet: prepare the train split first")
    for split in splits:
        if split != "train":
            report_oov(split, texts[split], vocabulary)
    if args.global_cmvn:
        print(f"global CMVN statistics of train -> {write_global_cmvn(args.output_root)}")
    _atomic_write_text(args.output_root / "config.yaml", data_config(args.time_warp, args.global_cmvn))
    return 0


if __name__ == "__main__":
    sys.exit(main())

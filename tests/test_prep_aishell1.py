"""scripts/prep_aishell1.py on a generated AISHELL-1-shaped mini tree."""

import argparse
import csv
import importlib.util
import inspect
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio
import yaml
from fairseq.data.audio.audio_utils import get_features_or_waveform
from fairseq.data.audio.data_cfg import S2TDataConfig
from fairseq.data.audio.feature_transforms.specaugment import SpecAugmentTransform

from cif_plugin.tasks.fbank_features import load_waveform
from cif_plugin.tasks.waveform_augment import WaveformAugmenter

from fairseq_setup import build_from_command_line
from killed_run import KILLED_RUN, run_killed

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "prep_aishell1.py"
TRANSCRIPTS = {
    "BAC009S0001W0001": "今天 天气 很好",
    "BAC009S0001W0002": "我们 去 公园",
    "BAC009S0002W0001": "天气 好",
    "BAC009S0002W0002": "今天 我们 很好",  # stereo 22.05 kHz: resampled and averaged
    "BAC009S0002W0003": "公园 很 好",  # corrupt wav
    "BAC009S0002W0004": "我们",  # empty wav
    "BAC009S0003W0001": "今天 去 ｔ 公园",  # dev: the full-width letter is out of vocabulary
    "BAC009S0003W0002": "我们 很好",
    "BAC009S0004W0001": "天气 很好",
}
SPLIT_OF_SPEAKER = {"S0001": "train", "S0002": "train", "S0003": "dev", "S0004": "test"}
NO_TRANSCRIPT = "BAC009S0001W0009"


def _write_wav(path: Path, seconds: float, sample_rate: int = 16000, channels: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    time = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * time) + 0.05 * rng.normal(size=time.shape)
    audio = np.stack([tone] * channels, axis=1) * np.linspace(0.5, 1.0, channels)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio, sample_rate, subtype="PCM_16")


def _make_corpus(root: Path) -> Path:
    for index, utt_id in enumerate(list(TRANSCRIPTS) + [NO_TRANSCRIPT]):
        speaker = utt_id[6:11]
        path = root / "data_aishell" / "wav" / SPLIT_OF_SPEAKER[speaker] / speaker / f"{utt_id}.wav"
        if utt_id == "BAC009S0002W0002":
            _write_wav(path, 1.3, sample_rate=22050, channels=2, seed=index)
        elif utt_id == "BAC009S0002W0003":
            path.write_bytes(b"RIFF0000WAVEfmt not really a wav file")
        elif utt_id == "BAC009S0002W0004":
            _write_wav(path, 0.0)
        else:
            _write_wav(path, 1.0 + 0.1 * index, seed=index)
    transcript = root / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt"
    transcript.parent.mkdir(parents=True)
    transcript.write_text(
        "".join(f"{utt_id} {text}\n" for utt_id, text in TRANSCRIPTS.items()), encoding="utf-8"
    )
    return root


def _prepare(corpus: Path, output: Path, *extra: str) -> str:
    command = [sys.executable, str(SCRIPT), "--corpus-root", str(corpus), "--output-root", str(output)]
    result = subprocess.run(
        command + ["--num-workers", "2", *extra], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _rows(path: Path):
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    corpus = _make_corpus(root / "corpus")
    output = root / "data"
    return corpus, output, _prepare(corpus, output)


def test_manifests_hold_the_kept_utterances(prepared):
    corpus, output, _ = prepared
    train = _rows(output / "train.tsv")
    assert list(train[0]) == ["id", "audio", "n_frames", "tgt_text", "speaker"]
    assert [row["id"] for row in train] == [
        "BAC009S0001W0001",
        "BAC009S0001W0002",
        "BAC009S0002W0001",
        "BAC009S0002W0002",
    ]
    assert train[0]["tgt_text"] == "今 天 天 气 很 好" and train[0]["speaker"] == "S0001"
    assert [row["id"] for row in _rows(output / "dev.tsv")] == ["BAC009S0003W0001", "BAC009S0003W0002"]
    assert len(_rows(output / "test.tsv")) == 1


def test_features_equal_torchaudio_kaldi_fbank(prepared):
    corpus, output, _ = prepared
    for row in _rows(output / "train.tsv"):
        features = get_features_or_waveform(str(output / row["audio"]))
        speaker = row["id"][6:11]
        audio, rate = soundfile.read(
            str(corpus / "data_aishell" / "wav" / "train" / speaker / f"{row['id']}.wav"),
            dtype="float32",
            always_2d=True,
        )
        waveform = torch.from_numpy(audio.T).mean(0, keepdim=True)
        if rate != 16000:
            waveform = torchaudio.functional.resample(waveform, rate, 16000)
        expected = torchaudio.compliance.kaldi.fbank(
            waveform * 32768, num_mel_bins=80, sample_frequency=16000
        )
        assert features.dtype == np.float32 and features.shape == tuple(expected.shape)
        assert int(row["n_frames"]) == features.shape[0]
        np.testing.assert_allclose(features, expected.numpy(), rtol=1e-5, atol=1e-5)


def test_vocabulary_comes_from_train_only(prepared):
    _, output, log = prepared
    vocabulary = dict(
        line.rsplit(" ", 1) for line in (output / "dict.txt").read_text(encoding="utf-8").splitlines()
    )
    train_chars = [c for row in _rows(output / "train.tsv") for c in row["tgt_text"].split()]
    assert vocabulary == {char: str(train_chars.count(char)) for char in set(train_chars)}
    assert "去" in vocabulary and "ｔ" not in vocabulary
    counts = [int(count) for count in vocabulary.values()]
    assert counts == sorted(counts, reverse=True)
    assert "dev: 1 of 10 characters (10.00%) are out of vocabulary ｔ:1" in log


def test_an_extra_test_set_is_prepared_like_test_with_the_train_vocabulary(prepared, tmp_path):
    """--splits test_long train: any folder of wav/ is a split; train still goes first (its vocabulary)."""
    corpus, output, _ = prepared
    extra = tmp_path / "corpus"
    shutil.copytree(corpus, extra)
    shutil.copytree(extra / "data_aishell" / "wav" / "test", extra / "data_aishell" / "wav" / "test_long")
    _prepare(extra, tmp_path / "data", "--splits", "test_long", "train")
    assert (tmp_path / "data" / "dict.txt").read_text() == (output / "dict.txt").read_text()
    rows, test_rows = _rows(tmp_path / "data" / "test_long.tsv"), _rows(output / "test.tsv")
    assert [row["id"] for row in rows] == [row["id"] for row in test_rows] == ["BAC009S0004W0001"]
    assert rows[0]["audio"].startswith("fbank80_test_long.zip:")
    assert rows[0]["tgt_text"] == test_rows[0]["tgt_text"]
    command = [sys.executable, str(SCRIPT), "--corpus-root", str(extra), "--output-root", str(tmp_path)]
    result = subprocess.run(command + ["--splits", "../test"], capture_output=True, text=True)
    assert result.returncode == 2 and "'../test' is not a split name" in result.stderr


def test_skipped_utterances_are_reported_with_reasons(prepared):
    _, output, log = prepared
    reasons = {row["id"]: row["reason"] for row in _rows(output / "train.skipped.tsv")}
    assert reasons[NO_TRANSCRIPT] == "no transcript"
    assert reasons["BAC009S0002W0003"].startswith("unreadable audio")
    assert reasons["BAC009S0002W0004"] == "empty audio"
    assert "train: 4 utterances written, 3 skipped" in log


def test_prep_killed_mid_zip_and_mid_manifest_resumes_to_the_same_output(prepared, tmp_path):
    """SIGKILL while the dev zip is written, then while the dev manifest is written: the restart skips
    the finished train split, redoes dev, and the output equals that of an uninterrupted run."""
    corpus, expected, _ = prepared
    output = tmp_path / "data"
    command = [sys.executable, str(KILLED_RUN), str(SCRIPT), "--corpus-root", str(corpus)]
    command += ["--output-root", str(output), "--num-workers", "2"]
    killed = run_killed(command, KILL_IN_WRITE_OF="fbank80_dev.zip.tmp", KILL_AFTER_BYTES=3000)
    assert killed.returncode == -9, killed.stdout[-3000:]
    assert (output / "train.tsv").is_file() and not (output / "dev.tsv").exists()
    assert (output / "fbank80_dev.zip.tmp").stat().st_size == 3000 and not (
        output / "fbank80_dev.zip"
    ).exists()
    finished_train = {name: (output / name).stat().st_mtime_ns for name in ("train.tsv", "fbank80_train.zip")}

    killed = run_killed(command, KILL_IN_WRITE_OF="dev.tsv.tmp", KILL_AFTER_BYTES=40)
    assert killed.returncode == -9, killed.stdout[-3000:]
    assert "train: " in killed.stdout and "exists, skipped" in killed.stdout
    assert not (output / "dev.tsv").exists()

    finished = run_killed(command)
    assert finished.returncode == 0, finished.stdout[-3000:]
    assert {name: (output / name).stat().st_mtime_ns for name in finished_train} == finished_train
    assert sorted(path.name for path in output.glob("*.tmp")) == []
    for name in ("train.tsv", "dev.tsv", "test.tsv", "dev.skipped.tsv", "dict.txt", "config.yaml"):
        assert (output / name).read_text(encoding="utf-8") == (expected / name).read_text(encoding="utf-8")
    for row in _rows(output / "dev.tsv"):
        resumed = get_features_or_waveform(str(output / row["audio"]))
        np.testing.assert_array_equal(resumed, get_features_or_waveform(str(expected / row["audio"])))


def test_prepared_data_loads_in_the_task(prepared):
    _, output, _ = prepared
    _, task, _, _ = build_from_command_line(output, "s2t_cif_transformer_tiny")
    task.load_dataset("train")
    characters = (output / "dict.txt").read_text(encoding="utf-8").splitlines()
    assert len(task.datasets["train"]) == 4 and len(task.target_dictionary) == 4 + len(characters) == 14


SPEEDS = "0.9,1.0,1.1"


@pytest.fixture(scope="module")
def speed_perturbed(prepared, tmp_path_factory):
    corpus, plain, _ = prepared
    output = tmp_path_factory.mktemp("speed") / "data"
    return corpus, plain, output, _prepare(corpus, output, "--speed-perturb", SPEEDS)


def _load_script():
    spec = importlib.util.spec_from_file_location("prep_aishell1", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_speed_perturbation_adds_named_copies_of_the_train_split_only(speed_perturbed):
    _, plain, output, log = speed_perturbed
    plain_train = _rows(plain / "train.tsv")
    train = _rows(output / "train.tsv")
    assert [row["id"] for row in train] == [
        name for row in plain_train for name in (f"sp0.9-{row['id']}", row["id"], f"sp1.1-{row['id']}")
    ]
    by_id = {row["id"]: row for row in train}
    for row in plain_train:
        for factor in (0.9, 1.1):
            copy = by_id[f"sp{factor}-{row['id']}"]
            assert (copy["tgt_text"], copy["speaker"]) == (row["tgt_text"], row["speaker"])
            assert abs(int(copy["n_frames"]) - int(row["n_frames"]) / factor) <= 2
        assert by_id[row["id"]]["n_frames"] == row["n_frames"]
    assert "train: 12 utterances written, 7 skipped" in log  # each copy of a bad file is named
    for name in ("dev.tsv", "test.tsv", "dict.txt"):  # the vocabulary counts each utterance once
        assert (output / name).read_text(encoding="utf-8") == (plain / name).read_text(encoding="utf-8")


def test_speed_perturbed_features_are_the_fbank_of_the_resampled_audio(speed_perturbed):
    """Playing audio at speed f is resampling it from 16000 f Hz to 16 kHz (sox's `speed`)."""
    corpus, _, output, _ = speed_perturbed
    for row in _rows(output / "train.tsv"):
        match = re.match(r"^sp([0-9.]+)-(.+)$", row["id"])
        if not match:
            continue
        factor, original = float(match[1]), match[2]
        path = corpus / "data_aishell" / "wav" / "train" / row["speaker"] / f"{original}.wav"
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        waveform = torchaudio.functional.resample(
            torch.from_numpy(audio.T).mean(0, keepdim=True), rate, 16000
        )
        played = torchaudio.functional.resample(waveform, round(16000 * factor), 16000)
        expected = torchaudio.compliance.kaldi.fbank(played * 32768, num_mel_bins=80, sample_frequency=16000)
        features = get_features_or_waveform(str(output / row["audio"]))
        assert int(row["n_frames"]) == features.shape[0] == expected.shape[0]
        np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_change_speed_moves_a_tone_and_its_duration_by_the_factor(factor):
    time = torch.arange(32000) / 16000
    tone = torch.sin(2 * torch.pi * 400 * time).unsqueeze(0)
    played = _load_script().change_speed(tone, factor)
    assert abs(played.shape[1] - 32000 / factor) <= 1
    spectrum = torch.fft.rfft(played[0]).abs()
    peak_hz = int(spectrum.argmax()) * 16000 / played.shape[1]
    assert abs(peak_hz - 400 * factor) < 1.0


def test_rerunning_with_other_speeds_asks_for_overwrite(speed_perturbed):
    corpus, _, output, _ = speed_perturbed
    command = [sys.executable, str(SCRIPT), "--corpus-root", str(corpus), "--output-root", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert (
        f"{output / 'train.tsv'} holds speed factors [0.9, 1.0, 1.1], not the [1.0] asked for"
        in result.stderr
    )
    script = _load_script()
    with pytest.raises(argparse.ArgumentTypeError, match="expected comma-separated numbers"):
        script.parse_speed_factors("0.9,x")
    with pytest.raises(argparse.ArgumentTypeError, match="expected distinct speed factors"):
        script.parse_speed_factors("1.1,1.1")
    assert script.parse_speed_factors("0.9,1.0,1.1") == [0.9, 1.0, 1.1]


def test_every_specaugment_key_is_one_fairseq_reads(prepared):
    """A misspelt key (the published config writes time_wrap_W) is silently ignored by fairseq."""
    _, output, _ = prepared
    config = yaml.safe_load((output / "config.yaml").read_text(encoding="utf-8"))["specaugment"]
    read_by_fairseq = inspect.getsource(SpecAugmentTransform.from_config_dict)
    assert config and all(f'"{key}"' in read_by_fairseq for key in config)


@pytest.fixture(scope="module")
def louder(prepared, tmp_path_factory):
    corpus, plain, _ = prepared
    output = tmp_path_factory.mktemp("louder") / "data"
    return corpus, plain, output, _prepare(corpus, output, "--volume-perturb", "2,2", "--time-warp", "5")


def test_volume_perturbation_shifts_the_train_features_by_2_ln_g_only(louder):
    _, plain, output, _ = louder
    for split, shift in (("train", 2 * np.log(2.0)), ("dev", 0.0), ("test", 0.0)):
        rows, plain_rows = _rows(output / f"{split}.tsv"), _rows(plain / f"{split}.tsv")
        assert [row["id"] for row in rows] == [row["id"] for row in plain_rows]
        for row, plain_row in zip(rows, plain_rows, strict=True):
            features = get_features_or_waveform(str(output / row["audio"]))
            expected = get_features_or_waveform(str(plain / plain_row["audio"])) + shift
            np.testing.assert_allclose(features, expected, atol=2e-4)
    assert (output / "train.augmentation.txt").read_text(encoding="utf-8").startswith("volume (2.0, 2.0)")


def test_noise_is_added_to_train_with_draws_fixed_by_the_seed_and_the_id(prepared, tmp_path):
    corpus, plain, _ = prepared
    output = tmp_path / "data"
    _prepare(corpus, output, "--splits", "train", "--noise-snr", "20,20", "--noise-kind", "pink")
    augmenter = WaveformAugmenter(snr_range=(20.0, 20.0), noise_kind="pink", seed=1)
    for row, plain_row in zip(_rows(output / "train.tsv"), _rows(plain / "train.tsv"), strict=True):
        path = corpus / "data_aishell" / "wav" / "train" / row["speaker"] / f"{row['id']}.wav"
        waveform = load_waveform(path)
        expected = torchaudio.compliance.kaldi.fbank(
            augmenter(row["id"], waveform) * 32768, num_mel_bins=80, sample_frequency=16000
        )
        features = get_features_or_waveform(str(output / row["audio"]))
        np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-4)
        clean = get_features_or_waveform(str(plain / plain_row["audio"]))
        assert np.abs(features - clean).mean() > 0.05  # 20 dB of noise changes the quiet bins


def test_time_warp_joins_the_train_transforms_only(louder):
    _, _, output, _ = louder
    data_cfg = S2TDataConfig(output / "config.yaml")
    train = data_cfg.get_feature_transforms("train", True)["feature_transforms"]
    assert train == ["utterance_cmvn", "time_warp", "specaugment"]
    assert data_cfg.get_feature_transforms("test", False)["feature_transforms"] == ["utterance_cmvn"]
    assert data_cfg.config["time_warp"] == {"W": 5}


def test_rerunning_with_other_augmentation_asks_for_overwrite(louder):
    corpus, _, output, _ = louder
    command = [sys.executable, str(SCRIPT), "--corpus-root", str(corpus), "--output-root", str(output)]
    result = subprocess.run(
        command + ["--volume-perturb", "2,2"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and "train: " in result.stdout and "exists, skipped" in result.stdout
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "was prepared with augmentation 'volume (2.0, 2.0); noise None; seed 1\\n'" in result.stderr
    result = subprocess.run(command + ["--noise-dir", str(corpus)], capture_output=True, text=True)
    assert result.returncode != 0 and "--noise-dir needs --noise-snr" in result.stderr
    empty = output.parent / "no_noise_here"
    empty.mkdir()
    result = subprocess.run(
        command + ["--noise-snr", "5,10", "--noise-dir", str(empty)], capture_output=True, text=True
    )
    assert (
        result.returncode != 0 and f"no .wav or .flac files under the noise folder {empty}" in result.stderr
    )


def test_global_cmvn_statistics_are_those_of_all_training_frames(prepared, tmp_path):
    """--global-cmvn on an existing preparation: stats = numpy mean and deviation of every train frame,
    the config normalises with them, and the task reads them from any working directory."""
    corpus, plain, _ = prepared
    output = tmp_path / "data"
    shutil.copytree(plain, output)
    stdout = _prepare(corpus, output, "--global-cmvn")
    assert "global CMVN statistics of train" in stdout
    frames = np.concatenate(
        [get_features_or_waveform(str(output / row["audio"])) for row in _rows(output / "train.tsv")]
    ).astype(np.float64)
    stats = np.load(output / "global_cmvn.npz")
    np.testing.assert_allclose(stats["mean"], frames.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats["std"], frames.std(axis=0), rtol=1e-4, atol=1e-5)
    config = yaml.safe_load((output / "config.yaml").read_text(encoding="utf-8"))
    assert config["transforms"]["*"] == ["global_cmvn"] and config["global_cmvn"]["stats_npz_path"]
    _, task, _, _ = build_from_command_line(output, "s2t_cif_transformer_tiny")
    task.load_dataset("dev")
    item = task.datasets["dev"][0]
    row = _rows(output / "dev.tsv")[0]
    raw = get_features_or_waveform(str(output / row["audio"]))
    expected = (raw - stats["mean"]) / stats["std"]
    np.testing.assert_allclose(item.source.numpy(), expected, rtol=1e-5, atol=1e-5)

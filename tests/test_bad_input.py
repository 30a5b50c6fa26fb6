"""Bad input, as users produce it, thrown at the data path, the task, the criterion, the recogniser and
the scripts: each case gets an error naming the file or utterance and the reason, or a skip that is
reported with a count; never a traceback from deep inside, never a half-written output."""

import importlib.util
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch

from cif_plugin.inference import Recognizer
from cif_plugin.tasks.checked_items import UnusableFeaturesError
from cif_plugin.tasks.feature_zip import write_feature_zip
from cif_plugin.tasks.manifest_rows import ManifestError

from fairseq_setup import build_from_command_line, tiny_train_command
from speech_data import write_dataset

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
HEADER = "id\taudio\tn_frames\ttgt_text\tspeaker"


@pytest.fixture(scope="module")
def base_data(tmp_path_factory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("bad_input") / "data", {"train": 6, "dev": 2})


@pytest.fixture
def data(base_data, tmp_path) -> Path:
    """A private copy of ``base_data`` to break."""
    return Path(shutil.copytree(base_data, tmp_path / "data"))


def _task(data: Path):
    """The task of the tiny CIF model on ``data`` (set up as fairseq-train does)."""
    return build_from_command_line(data, "s2t_cif_transformer_tiny")[1]


def _lines(data: Path, split: str = "train"):
    return (data / f"{split}.tsv").read_text(encoding="utf-8").splitlines()


def _write_lines(data: Path, lines, split: str = "train") -> None:
    (data / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _set_field(data: Path, row: int, column: str, value: str) -> None:
    """Set ``column`` of data row ``row`` (0 = first row after the header) of train.tsv."""
    lines = _lines(data)
    header = lines[0].split("\t")
    fields = lines[row + 1].split("\t")
    fields[header.index(column)] = value
    lines[row + 1] = "\t".join(fields)
    _write_lines(data, lines)


def _add_utterances(data: Path, utterances, split: str = "train") -> None:
    """Append (id, features, text) rows whose features live in a zip of their own."""
    addresses = write_feature_zip(
        data / "extra.zip", [(utt_id, feats) for utt_id, feats, _ in utterances], relative_to=data
    )
    rows = [f"{u}\t{addresses[u]}\t{len(f)}\t{text}\tS9" for u, f, text in utterances]
    _write_lines(data, _lines(data, split) + rows, split)


# --- manifests -------------------------------------------------------------------------------


def test_manifest_without_a_required_column_names_it(data):
    _write_lines(
        data,
        ["\t".join(field for i, field in enumerate(line.split("\t")) if i != 2) for line in _lines(data)],
    )
    with pytest.raises(ManifestError, match=r"train\.tsv: no n_frames column; the header is"):
        _task(data).load_dataset("train")


def test_row_with_a_missing_field_names_its_line(data):
    lines = _lines(data)
    lines[3] = lines[3].rsplit("\t", 1)[0]
    _write_lines(data, lines)
    with pytest.raises(ManifestError, match=r"train\.tsv, line 4: 4 tab-separated fields, the header has 5"):
        _task(data).load_dataset("train")


@pytest.mark.parametrize("frames", ["abc", "-5", "12.5", ""])
def test_frame_count_that_is_not_a_whole_number_names_the_line_and_utterance(data, frames):
    _set_field(data, 1, "n_frames", frames)
    with pytest.raises(ManifestError, match=rf"train\.tsv, line 3 \(train_0001\): n_frames is '{frames}'"):
        _task(data).load_dataset("train")


def test_duplicated_id_names_both_lines(data):
    _set_field(data, 4, "id", "train_0002")
    with pytest.raises(ManifestError, match=r"line 6: id train_0002 is already the id of line 4"):
        _task(data).load_dataset("train")


def test_rows_past_the_end_of_the_zip_are_named(data):
    zip_size = (data / "fbank80.zip").stat().st_size
    _set_field(data, 2, "audio", f"fbank80.zip:{zip_size - 100}:4000")
    with pytest.raises(
        FileNotFoundError, match=r"1 row\(s\) of .*train\.tsv .*\n  train_0002: slice .* ends past"
    ):
        _task(data).load_dataset("train")


def test_truncated_zip_lists_the_rows_it_lost(data):
    with open(data / "fbank80.zip", "r+b") as handle:
        handle.truncate(handle.seek(0, 2) // 2)
    with pytest.raises(
        FileNotFoundError, match=r"row\(s\) of .*train\.tsv point to missing or unreadable data"
    ):
        _task(data).load_dataset("train")


def test_zero_frame_rows_and_empty_transcripts_are_skipped_and_counted(data, caplog):
    _set_field(data, 0, "n_frames", "0")
    _set_field(data, 3, "tgt_text", "")
    with caplog.at_level(logging.WARNING):
        task = _task(data)
        task.load_dataset("train")
    assert len(task.datasets["train"]) == 4
    assert (
        "4 rows kept; skipped 2: 1 x no frames (n_frames 0) (train_0000); 1 x empty transcript (train_0003)"
        in (caplog.text)
    )


def test_manifest_with_nothing_usable_is_refused(data):
    lines = _lines(data)
    _write_lines(data, [lines[0]] + ["\t".join([*line.split("\t")[:3], "", "S0"]) for line in lines[1:]])
    with pytest.raises(ManifestError, match=r"train\.tsv: no usable rows; skipped 6: 6 x empty transcript"):
        _task(data).load_dataset("train")


def test_characters_outside_the_dictionary_become_unk_and_are_counted(data, caplog):
    _set_field(data, 0, "tgt_text", "零 X 一 Y")
    with caplog.at_level(logging.WARNING):
        task = _task(data)
        task.load_dataset("train")
    dictionary = task.target_dictionary
    assert task.datasets["train"][0].target.tolist()[:4] == [
        dictionary.index("零"),
        dictionary.unk(),
        dictionary.index("一"),
        dictionary.unk(),
    ]
    assert (
        "1 utterance(s) of train have 2 character(s) outside dict.txt, read as <unk>: X (1), Y (1)"
        in caplog.text
    )


def test_dictionary_with_a_duplicate_symbol_names_both_lines(data):
    with open(data / "dict.txt", "a", encoding="utf-8") as dictionary:
        dictionary.write("三 5\n")
    with pytest.raises(ManifestError, match=r"dict\.txt, line 11: symbol '三' is already on line 4"):
        _task(data)


def test_dictionary_line_without_a_count_names_it(data):
    with open(data / "dict.txt", "a", encoding="utf-8") as dictionary:
        dictionary.write("X\n")
    with pytest.raises(ManifestError, match=r"dict\.txt, line 11: expected '<symbol> <count>', got 'X'"):
        _task(data)


# --- features --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_features_with_nan_or_inf_are_refused_naming_the_utterance(data, value):
    features = np.random.default_rng(0).normal(size=(40, 80)).astype(np.float32)
    features[7, 3] = value
    _add_utterances(data, [("broken", features, "零 一")])
    task = _task(data)
    task.load_dataset("train")
    dataset = task.datasets["train"]
    dataset[0]  # the others read fine
    with pytest.raises(
        UnusableFeaturesError, match=r"utterance broken \(.*extra\.zip:\d+:\d+\): .* NaN or infinite"
    ):
        dataset[dataset.ids.index("broken")]


def test_features_with_no_frames_behind_a_nonzero_count_are_refused(data):
    _add_utterances(data, [("hollow", np.zeros((0, 80), np.float32), "零")])
    _set_field(data, 6, "n_frames", "25")
    task = _task(data)
    task.load_dataset("train")
    with pytest.raises(UnusableFeaturesError, match=r"utterance hollow .*: no feature frames"):
        task.datasets["train"][6]


@pytest.mark.parametrize(
    "arch, criterion",
    [
        ("s2t_cif_transformer_tiny", "cif"),
        ("s2t_ctc_conformer_tiny", "ctc_asr"),
        ("s2t_asg_conformer_tiny", "asg"),
    ],
)
def test_one_frame_utterance_trains_to_a_finite_loss_and_decodes(data, arch, criterion, caplog):
    """One input frame leaves no encoder frame after the 4x subsampling: every criterion must still
    give a finite loss and gradient (ASG leaves the utterance out, saying so) and decode the batch."""
    with open(data / "dict.txt", "a", encoding="utf-8") as dictionary:
        dictionary.write("1 1\n2 1\n")  # the ASG model's replabel symbols
    rng = np.random.default_rng(1)
    _add_utterances(data, [("one_frame", rng.normal(size=(1, 80)).astype(np.float32), "零 一 二")])
    cfg, task, model, criterion = build_from_command_line(data, arch, ["--criterion", criterion])
    task.load_dataset("train")
    dataset = task.datasets["train"]
    sample = dataset.collater([dataset[i] for i in (0, dataset.ids.index("one_frame"))])
    with caplog.at_level(logging.WARNING):
        loss, _, logging_output = criterion(model, sample)
    assert torch.isfinite(loss), logging_output
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    if arch.startswith("s2t_asg"):
        assert "utterance 6: 1 input frame(s) give no encoder frame; left out of the ASG loss" in caplog.text
    model.eval()
    hypotheses = task.build_generator([model], cfg.generation).generate([model], sample)
    assert len(hypotheses) == 2


def test_utterances_over_the_size_limit_are_named_or_skipped_with_a_count(data, caplog):
    _set_field(data, 1, "n_frames", "7000")
    task = _task(data)
    task.load_dataset("train")
    dataset = task.datasets["train"]
    indices = dataset.ordered_indices()
    with pytest.raises(
        ValueError, match=r"1 utterance\(s\) longer than .* \(6000, 1024\): train_0001 \(\(7000, \d+\)\)"
    ):
        task.filter_indices_by_size(indices, dataset, (6000, 1024), ignore_invalid_inputs=False)
    with caplog.at_level(logging.WARNING):
        kept = task.filter_indices_by_size(indices, dataset, (6000, 1024), ignore_invalid_inputs=True)
    assert len(kept) == 5 and "are skipped: train_0001" in caplog.text


# --- audio: the recogniser and the AISHELL-1 preparation ------------------------------------


def _wav(path: Path, samples: np.ndarray, sample_rate: int = 16000, subtype: str = "FLOAT") -> Path:
    soundfile.write(str(path), samples, sample_rate, subtype=subtype)
    return path


def test_recogniser_reports_each_bad_file_by_name_and_goes_on(tiny_checkpoint, tmp_path):
    rng = np.random.default_rng(2)
    speech = (0.1 * rng.normal(size=16000)).astype(np.float32)
    with_nan = speech.copy()
    with_nan[100] = np.nan
    eight_channels = np.stack([speech * (k + 1) / 8 for k in range(8)], axis=1)
    files = [
        _wav(tmp_path / "nan.wav", with_nan),
        _wav(tmp_path / "empty.wav", np.zeros(0, np.float32)),
        _wav(tmp_path / "one_sample.wav", speech[:1]),
        _wav(tmp_path / "eight_channels.wav", eight_channels),
        _wav(tmp_path / "mono.wav", eight_channels.mean(axis=1)),
        tmp_path / "missing.wav",
    ]
    results = {Path(t.name).name: t for t in Recognizer.from_pretrained(tiny_checkpoint).transcribe(files)}
    assert "nan.wav: 1 of 16000 samples are NaN or infinite" in results["nan.wav"].error
    assert "empty.wav: empty audio" in results["empty.wav"].error
    assert "one_sample.wav: 0.000 s is too short for the model" in results["one_sample.wav"].error
    assert "missing.wav: no such file" in results["missing.wav"].error
    assert results["eight_channels.wav"].ok and results["eight_channels.wav"].duration == 1.0
    assert results["eight_channels.wav"].text == results["mono.wav"].text  # the channels are averaged


def test_silence_gives_an_empty_transcript_without_decoding_it(tiny_checkpoint, tmp_path):
    minutes = 5
    silence = _wav(tmp_path / "silence.wav", np.zeros(minutes * 60 * 16000, np.int16), subtype="PCM_16")
    transcript = Recognizer.from_pretrained(tiny_checkpoint).transcribe([silence])[0]
    assert transcript.ok and transcript.duration == minutes * 60.0
    assert transcript.text == "" and transcript.tokens == []


@pytest.mark.slow
def test_an_hour_of_silence_gives_an_empty_transcript(tiny_checkpoint, tmp_path):
    silence = _wav(tmp_path / "hour.wav", np.zeros(3600 * 16000, np.int16), subtype="PCM_16")
    transcript = Recognizer.from_pretrained(tiny_checkpoint).transcribe([silence])[0]
    assert transcript.ok and transcript.duration == 3600.0 and transcript.text == ""


def test_prep_skips_audio_with_nan_samples_naming_the_reason(tmp_path):
    spec = importlib.util.spec_from_file_location("prep_aishell1", SCRIPTS / "prep_aishell1.py")
    prep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(prep)
    samples = np.full(16000, 0.1, np.float32)
    samples[5] = np.nan
    assert prep.compute_fbank(_wav(tmp_path / "nan.wav", samples), 0.3, 30.0)[0] == (
        "1 of 16000 samples are NaN or infinite"
    )
    eight = np.tile(samples[:, None], (1, 8))
    eight[5] = 0.1
    assert prep.compute_fbank(_wav(tmp_path / "eight.wav", eight), 0.3, 30.0)[0].shape == (98, 80)


# --- scripts ---------------------------------------------------------------------------------


def _script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=300
    )


def test_plm_extraction_refuses_a_bad_manifest_before_writing_anything(data, tiny_bert):
    _set_field(data, 2, "id", "train_0001")
    result = _script(
        "extract_plm_features.py", "--data", str(data), "--plm", str(tiny_bert), "--splits", "train"
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].endswith("id train_0001 is already the id of line 3")
    assert "Traceback" not in result.stderr
    assert not (data / "plm_features" / "train.f16").exists()


# --- the fairseq commands ------------------------------------------------------------------------


def _train(data: Path, save_dir: Path) -> subprocess.CompletedProcess:
    command = tiny_train_command(data, save_dir, "s2t_cif_transformer_tiny", "cif", max_update=3)
    return subprocess.run(command + ["--batch-size", "2"], capture_output=True, text=True, timeout=600)


def test_fairseq_train_reports_a_bad_manifest_in_one_line(data, tmp_path):
    _set_field(data, 3, "n_frames", "many")
    result = _train(data, tmp_path / "save")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"fairseq-train: error: {data / 'train.tsv'}, line 5 (train_0003): n_frames is 'many', not a whole"
        " number >= 0"
    )


def test_fairseq_train_reports_nan_features_read_by_a_data_worker_in_one_line(data, tmp_path):
    features = np.full((40, 80), np.nan, np.float32)
    _add_utterances(data, [("broken", features, "零 一")])
    result = _train(data, tmp_path / "save")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("fairseq-train: error: utterance broken (") and last.endswith(
        "3200 of 3200 feature values are NaN or infinite; re-create its features or remove the row"
    ), last

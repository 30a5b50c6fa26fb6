"""scripts/extract_plm_features.py and the feature store, with a tiny random BERT made here."""

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from cif_plugin.tasks.plm_feature_store import PlmFeatureStore, PlmFeatureStoreWriter, read_meta

from killed_run import KILLED_RUN, run_killed

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "extract_plm_features.py"


def _data_with_latin(tiny_data: Path, root: Path) -> Path:
    data = root / "data"
    shutil.copytree(tiny_data, data)
    rows = "id\taudio\tn_frames\ttgt_text\tspeaker\n" + "x1\tz\t1\ta 零 ｔ b 九\tS\nx2\tz\t1\tb\tS\n"
    (data / "extra.tsv").write_text(rows, encoding="utf-8")
    return data


def _extract(data: Path, bert: Path, *extra: str):
    command = [
        sys.executable,
        str(SCRIPT),
        "--data",
        str(data),
        "--plm",
        str(bert),
        "--batch-size",
        "5",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _direct_features(bert: Path, tokens):
    tokenizer, model = AutoTokenizer.from_pretrained(bert), AutoModel.from_pretrained(bert).eval()
    ids = [tokenizer.cls_token_id] + tokenizer.convert_tokens_to_ids(tokens) + [tokenizer.sep_token_id]
    with torch.no_grad():
        return model(torch.tensor([ids])).last_hidden_state[0].numpy()


def _manifest_tokens(path: Path):
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return {line.split("\t")[0]: line.split("\t")[3].split() for line in lines}


@pytest.fixture(scope="module")
def extracted(tiny_data, tiny_bert, tmp_path_factory):
    data = _data_with_latin(tiny_data, tmp_path_factory.mktemp("plm"))
    result = _extract(data, tiny_bert)
    assert result.returncode == 0, result.stderr[-3000:]
    return data, result.stdout


def test_one_vector_per_token_plus_cls_and_sep(extracted):
    data, log = extracted
    store = PlmFeatureStore(data / "plm_features")
    assert store.meta["dim"] == 32 and store.meta["layer"] == -1
    for split in ("train", "dev", "extra"):
        for utt_id, tokens in _manifest_tokens(data / f"{split}.tsv").items():
            assert store[utt_id].shape == (len(tokens) + 2, 32), utt_id
    assert "extra: 2 utterances in the store (2 extracted now, 2 unknown tokens)" in log  # ｔ and 九


def test_store_round_trips_the_plm_output(extracted, tiny_bert):
    data, _ = extracted
    store = PlmFeatureStore(data / "plm_features")
    for utt_id, tokens in list(_manifest_tokens(data / "dev.tsv").items())[:3] + [
        ("x1", "a 零 ｔ b 九".split())
    ]:
        np.testing.assert_allclose(
            store[utt_id].astype(np.float32), _direct_features(tiny_bert, tokens), atol=1e-3
        )
    assert store.missing(["x1", "nope"]) == ["nope"]
    assert np.array_equal(pickle.loads(pickle.dumps(store))["x2"], store["x2"])  # what a worker receives


def test_store_of_another_layer_is_refused(extracted, tiny_bert):
    data, _ = extracted
    result = _extract(data, tiny_bert, "--layer", "1", "--splits", "dev")
    assert result.returncode != 0 and "use another folder" in result.stderr


@pytest.mark.slow  # a minute of kills and restarts; the default run keeps its budget
def test_extraction_killed_mid_write_resumes_to_the_same_store(extracted, tiny_bert, tmp_path):
    """SIGKILL in the middle of an utterance's rows, then in the middle of an index line: the
    restarted extraction ends with the store an uninterrupted one wrote."""
    data, _ = extracted
    copy = tmp_path / "data"
    shutil.copytree(data, copy, ignore=shutil.ignore_patterns("plm_features"))
    store_dir = copy / "plm_features"
    command = [sys.executable, str(KILLED_RUN), str(SCRIPT), "--data", str(copy), "--plm", str(tiny_bert)]
    command += ["--batch-size", "5", "--splits", "train"]
    row_bytes = 32 * 2
    killed = run_killed(command, KILL_IN_WRITE_OF="train.f16", KILL_AFTER_BYTES=20 * row_bytes + 30)
    assert killed.returncode == -9, killed.stdout[-3000:]
    assert (store_dir / "train.f16").stat().st_size == 20 * row_bytes + 30
    indexed = (store_dir / "train.index.tsv").read_text()
    killed = run_killed(command, KILL_IN_WRITE_OF="train.index.tsv", KILL_AFTER_BYTES=30)
    assert killed.returncode == -9, killed.stdout[-3000:]
    cut_short = (store_dir / "train.index.tsv").read_text()
    assert len(cut_short) == len(indexed) + 30 and not cut_short.endswith("\n")

    finished = run_killed(command)
    assert finished.returncode == 0, finished.stdout[-3000:]
    assert "train: 24 utterances in the store" in finished.stdout
    resumed, original = PlmFeatureStore(store_dir), PlmFeatureStore(data / "plm_features", ["train"])
    assert sorted(resumed.location) == sorted(original.location)
    for utt_id in original.location:
        np.testing.assert_array_equal(resumed[utt_id], original[utt_id])
    rows = sum(len(original[utt_id]) for utt_id in original.location)
    assert (store_dir / "train.f16").stat().st_size == rows * row_bytes


def test_truncated_store_is_refused_naming_the_file(extracted, tmp_path):
    data, _ = extracted
    store_dir = tmp_path / "plm_features"
    shutil.copytree(data / "plm_features", store_dir)
    with open(store_dir / "train.f16", "r+b") as handle:
        handle.truncate(handle.seek(0, 2) - 100)
    with pytest.raises(ValueError, match=r"train\.f16 is truncated: .*\(up to utterance train_"):
        PlmFeatureStore(store_dir)
    with pytest.raises(ValueError, match=r"train\.f16 is truncated: .*delete it and train\.index\.tsv"):
        PlmFeatureStoreWriter(
            store_dir, "train", {k: v for k, v in read_meta(store_dir).items() if k != "dtype"}
        )


@pytest.mark.slow  # a minute of kills and restarts; the default run keeps its budget
def test_make_random_bert_killed_while_writing_leaves_no_partial_model(tiny_data, tmp_path):
    """Killed in the middle of vocab.txt (first run) or of the tokenizer files (rebuilding over a
    finished model): the output is absent or the earlier model, never a half-written one."""
    script = SCRIPT.parent / "make_random_bert.py"
    output = tmp_path / "bert"
    command = [sys.executable, str(KILLED_RUN), str(script), "--vocab-from", str(tiny_data / "dict.txt")]
    command += ["--output", str(output)]
    killed = run_killed(command, KILL_IN_WRITE_OF="vocab.txt", KILL_AFTER_BYTES=10)
    assert killed.returncode == -9, killed.stdout[-3000:]
    assert not output.exists()
    finished = run_killed(command)
    assert finished.returncode == 0, finished.stdout[-3000:]
    first = AutoModel.from_pretrained(output).state_dict()
    vocabulary = (output / "vocab.txt").read_text(encoding="utf-8").split()
    assert vocabulary[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] and len(vocabulary) == 5 + len(
        (tiny_data / "dict.txt").read_text(encoding="utf-8").splitlines()
    )
    killed = run_killed(
        command + ["--seed", "2"], KILL_IN_WRITE_OF="tokenizer_config.json", KILL_AFTER_BYTES=10
    )
    assert killed.returncode == -9, killed.stdout[-3000:]
    kept = AutoModel.from_pretrained(output).state_dict()
    assert all(torch.equal(kept[name], first[name]) for name in first)
    assert AutoTokenizer.from_pretrained(output).convert_tokens_to_ids("[CLS]") == 2

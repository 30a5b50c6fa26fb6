"""Shared fixtures: tiny datasets and models built through fairseq's own option parsing.

With ``CIF_TEST_FIXTURE_CACHE=<folder>`` the data and model fixtures are built once into that folder
and reused by later pytest processes (mutation testing runs pytest once per mutant; mutation/).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from fairseq_setup import PLUGIN_DIR, tiny_train_command
from speech_data import write_aishell_sized_data_dir, write_data_config, write_dataset


def _built_once(tmp_path_factory, name: str, build: Callable[[Path], Path]) -> Path:
    """``build(folder)`` in a fresh temporary folder, or once into the fixture cache when one is set."""
    cache = os.environ.get("CIF_TEST_FIXTURE_CACHE")
    if not cache:
        return build(tmp_path_factory.mktemp(name))
    folder, done = Path(cache) / name, Path(cache) / f"{name}.done"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        done.write_text(str(build(folder)), encoding="utf-8")
    return Path(done.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """24 training and 8 dev utterances of learnable synthetic features."""
    return _built_once(
        tmp_path_factory, "tiny_data", lambda folder: write_dataset(folder, {"train": 24, "dev": 8})
    )


def _with_replabels(tiny_data: Path, folder: Path) -> Path:
    data = folder / "data"
    shutil.copytree(tiny_data, data)
    with open(data / "dict.txt", "a", encoding="utf-8") as dictionary:
        dictionary.write("1 1\n2 1\n")
    return data


@pytest.fixture(scope="session")
def asg_data(tiny_data, tmp_path_factory) -> Path:
    """``tiny_data`` with the replabel symbols "1" and "2" added to its dictionary."""
    return _built_once(tmp_path_factory, "asg", lambda folder: _with_replabels(tiny_data, folder))


@pytest.fixture(scope="session")
def aishell_data(tmp_path_factory) -> Path:
    """A data folder with the AISHELL-1-sized dictionary (4,234 symbols)."""
    return _built_once(tmp_path_factory, "aishell_dict", write_aishell_sized_data_dir)


def _train_tiny(data: Path, save_dir: Path, arch: str, criterion: str, max_update: int):
    """(log, checkpoint_last.pt) of a few fairseq-train updates of a *_tiny architecture."""
    command = tiny_train_command(data, save_dir, arch, criterion, max_update=max_update)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    return log, save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_data, tmp_path_factory) -> Path:
    """checkpoint_last.pt of one fairseq-train update of the tiny model on ``tiny_data``."""
    return _built_once(
        tmp_path_factory,
        "tiny_checkpoint",
        lambda save_dir: _train_tiny(tiny_data, save_dir, "s2t_cif_transformer_tiny", "cif", 1)[1],
    )


def _without_cmvn(tiny_data: Path, folder: Path) -> Path:
    data = folder / "data"
    shutil.copytree(tiny_data, data)
    write_data_config(data)  # no utterance CMVN: a stream cannot normalise by the whole utterance
    return data


@pytest.fixture(scope="session")
def streaming_checkpoint(tiny_data, tmp_path_factory) -> Path:
    """checkpoint_last.pt of two fairseq-train updates of the chunk-causal tiny CIF model (dynamic
    chunk training) on ``tiny_data`` without CMVN."""

    def build(folder: Path) -> Path:
        data = _without_cmvn(tiny_data, folder)
        return _train_tiny(data, folder / "save", "s2t_cif_transformer_streaming_tiny", "cif", 2)[1]

    return _built_once(tmp_path_factory, "streaming_checkpoint", build)


@pytest.fixture(scope="session")
def talkative_streaming_checkpoint(streaming_checkpoint, tmp_path_factory) -> Path:
    """``streaming_checkpoint`` with its CIF weights pushed towards 0.35 a frame and ``</s>`` out of
    the decoder's reach (its output row zeroed, the others scaled up), so a second of audio gives
    several tokens: the server tests need partial results and tokens to click."""

    def build(folder: Path) -> Path:
        state = torch.load(streaming_checkpoint, weights_only=True)
        weights = state["model"]
        weights["cif.weight_predictor.output_proj.weight"] *= 0.1
        weights["cif.weight_predictor.output_proj.bias"].fill_(-0.6)  # sigmoid(-0.6) = 0.35
        output = weights["decoder.output_projection.weight"]
        output *= 10.0
        output[2] = 0.0  # </s>: fairseq's dictionaries put it at index 2
        torch.save(state, folder / "checkpoint.pt")
        return folder / "checkpoint.pt"

    return _built_once(tmp_path_factory, "talkative_streaming_checkpoint", build)


@pytest.fixture(scope="session")
def asg_checkpoint(asg_data, tmp_path_factory) -> Path:
    """checkpoint_last.pt of two fairseq-train updates of the tiny ASG model on ``asg_data``."""
    save_dir = tmp_path_factory.mktemp("asg_checkpoint")
    return _train_tiny(asg_data, save_dir, "s2t_asg_conformer_tiny", "asg", 2)[1]


# The tiny BERT knows half of the synthetic characters and two Latin letters.
VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"零一二三四", "a", "b"]


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return _built_once(tmp_path_factory, "tiny_bert", _write_tiny_bert)


def _write_tiny_bert(folder: Path) -> Path:
    (folder / "vocab.txt").write_text("\n".join(VOCABULARY) + "\n", encoding="utf-8")
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    config = BertConfig(vocab_size=len(VOCABULARY), max_position_embeddings=64, **sizes)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def plm_data(tiny_data, tiny_bert, tmp_path_factory) -> Path:
    """A copy of ``tiny_data`` with the tiny BERT's features of every utterance in plm_features/."""
    return _built_once(
        tmp_path_factory, "plm_data", lambda folder: _with_plm_features(tiny_data, tiny_bert, folder)
    )


def _with_plm_features(tiny_data: Path, tiny_bert: Path, folder: Path) -> Path:
    data = folder / "data"
    shutil.copytree(tiny_data, data)
    script = PLUGIN_DIR.parent / "scripts" / "extract_plm_features.py"
    command = [sys.executable, str(script), "--data", str(data), "--plm", str(tiny_bert)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    return data


@pytest.fixture(scope="session")
def ctc_training(tiny_data, tmp_path_factory):
    """(log, checkpoint) of three fairseq-train updates of the tiny CTC model."""
    return _train_tiny(tiny_data, tmp_path_factory.mktemp("ctc"), "s2t_ctc_conformer_tiny", "ctc_asr", 3)


FAVOURITE = "九"  # the only word of the language_model fixture's training text


def _run(module, *args, cwd):
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


@pytest.fixture(scope="session")
def language_model(tiny_data, tmp_path_factory):
    """A tiny transformer LM, trained with stock fairseq-train on '九 九 九' lines, over tiny_data's dict."""
    return _built_once(tmp_path_factory, "lm", lambda root: _train_language_model(tiny_data, root))


def _train_language_model(tiny_data: Path, root: Path) -> Path:
    (root / "train.txt").write_text("\n".join(" ".join([FAVOURITE] * n) for n in range(2, 8)) * 20 + "\n")
    _run("fairseq_cli.preprocess", "--only-source", "--srcdict", str(tiny_data / "dict.txt"), "--trainpref",
         "train.txt", "--validpref", "train.txt", "--destdir", "bin", "--workers", "1", cwd=root)  # fmt: skip
    _run("fairseq_cli.train", "bin", "--task", "language_modeling", "--arch", "transformer_lm",
         "--decoder-layers", "1", "--decoder-embed-dim", "32", "--decoder-ffn-embed-dim", "64",
         "--decoder-attention-heads", "2", "--sample-break-mode", "eos", "--tokens-per-sample", "64",
         "--max-tokens", "512", "--optimizer", "adam", "--lr", "5e-3", "--max-update", "60", "--cpu",
         "--no-progress-bar", "--save-dir", "ckpt", "--no-epoch-checkpoints", cwd=root)  # fmt: skip
    return root / "ckpt" / "checkpoint_last.pt"

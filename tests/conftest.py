"""Shared fixtures: tiny datasets and models built through fairseq's own option parsing."""

import subprocess
import sys
from pathlib import Path

import pytest

from fairseq_setup import PLUGIN_DIR
from speech_data import write_aishell_sized_data_dir, write_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """24 training and 8 dev utterances of learnable synthetic features."""
    return write_dataset(tmp_path_factory.mktemp("tiny_data"), {"train": 24, "dev": 8})


@pytest.fixture(scope="session")
def aishell_data(tmp_path_factory) -> Path:
    """A data folder with the AISHELL-1-sized dictionary (4,234 symbols)."""
    return write_aishell_sized_data_dir(tmp_path_factory.mktemp("aishell_dict"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_data, tmp_path_factory) -> Path:
    """checkpoint_last.pt of one fairseq-train update of the tiny model on ``tiny_data``."""
    save_dir = tmp_path_factory.mktemp("tiny_checkpoint")
    command = [sys.executable, "-m", "fairseq_cli.train", str(tiny_data), "--user-dir", str(PLUGIN_DIR)]
    command += ["--task", "speech_to_text_cif", "--config-yaml", "config.yaml", "--train-subset", "train"]
    command += ["--valid-subset", "dev", "--arch", "s2t_cif_transformer_tiny", "--criterion", "cif"]
    command += ["--optimizer", "adam", "--lr", "1e-4", "--max-tokens", "4000", "--max-update", "1", "--cpu"]
    command += ["--no-progress-bar", "--save-dir", str(save_dir)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return save_dir / "checkpoint_last.pt"

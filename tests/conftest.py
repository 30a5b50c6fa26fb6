"""Shared fixtures: tiny datasets and models built through fairseq's own option parsing."""

import shutil
from pathlib import Path

import pytest

from fairseq_setup import PLUGIN_DIR
from speech_data import write_dataset

REPO_ROOT = PLUGIN_DIR.parent
AISHELL_DICT = REPO_ROOT.parent / "shared" / "data" / "aishell1_dict.txt"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """24 training and 8 dev utterances of learnable synthetic features."""
    return write_dataset(tmp_path_factory.mktemp("tiny_data"), {"train": 24, "dev": 8})


@pytest.fixture(scope="session")
def aishell_data(tmp_path_factory) -> Path:
    """A data folder whose dictionary is the AISHELL-1 one (4,234 symbols)."""
    if not AISHELL_DICT.is_file():
        pytest.skip(f"{AISHELL_DICT} is missing")
    root = tmp_path_factory.mktemp("aishell_dict")
    shutil.copy(AISHELL_DICT, root / "dict.txt")
    (root / "config.yaml").write_text(
        "input_channels: 1\ninput_feat_per_channel: 80\nvocab_filename: dict.txt\n"
    )
    return root

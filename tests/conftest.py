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
    """A data folder with the AISHELL-1 dictionary (4,234 symbols with the specials); where
    ../shared is absent, a stand-in of the same size (sizes depend only on the symbol count)."""
    root = tmp_path_factory.mktemp("aishell_dict")
    if AISHELL_DICT.is_file():
        shutil.copy(AISHELL_DICT, root / "dict.txt")
    else:
        (root / "dict.txt").write_text("".join(f"c{i} 1\n" for i in range(4230)))
    (root / "config.yaml").write_text("input_channels: 1\ninput_feat_per_channel: 80\nvocab_filename: dict.txt\n")
    return root

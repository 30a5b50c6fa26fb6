"""Shared fixtures: tiny datasets and models built through fairseq's own option parsing."""

from pathlib import Path

import pytest

from speech_data import write_aishell_sized_data_dir, write_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """24 training and 8 dev utterances of learnable synthetic features."""
    return write_dataset(tmp_path_factory.mktemp("tiny_data"), {"train": 24, "dev": 8})


@pytest.fixture(scope="session")
def aishell_data(tmp_path_factory) -> Path:
    """A data folder with the AISHELL-1-sized dictionary (4,234 symbols)."""
    return write_aishell_sized_data_dir(tmp_path_factory.mktemp("aishell_dict"))

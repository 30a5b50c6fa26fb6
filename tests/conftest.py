"""Shared fixtures: tiny datasets and models built through fairseq's own option parsing."""

import shutil
from pathlib import Path
from typing import Sequence

import pytest
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

import cif_plugin

from speech_data import write_dataset

PLUGIN_DIR = Path(cif_plugin.__file__).resolve().parent
REPO_ROOT = PLUGIN_DIR.parent
AISHELL_DICT = REPO_ROOT.parent / "shared" / "data" / "aishell1_dict.txt"


def build_from_command_line(data_dir: Path, arch: str, extra: Sequence[str] = ()):
    """(cfg, task, model, criterion) exactly as fairseq-train builds them from these options."""
    parser = options.get_training_parser()
    command_line = [str(data_dir), "--user-dir", str(PLUGIN_DIR), "--task", "speech_to_text_cif"]
    command_line += ["--arch", arch, "--criterion", "cif", "--cpu", *extra]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, command_line))
    task = tasks.setup_task(cfg.task)
    return cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion)


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

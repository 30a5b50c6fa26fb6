"""Build task, model and criterion from a command line, exactly as fairseq-train does."""

import sys
from pathlib import Path
from typing import List, Sequence

from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

import cif_plugin

PLUGIN_DIR = Path(cif_plugin.__file__).resolve().parent


def build_from_command_line(data_dir: Path, arch: str, extra: Sequence[str] = ()):
    """(cfg, task, model, criterion) for ``--task speech_to_text_cif --criterion cif`` on the CPU
    unless ``extra`` overrides it."""
    parser = options.get_training_parser()
    command_line = [str(data_dir), "--user-dir", str(PLUGIN_DIR), "--task", "speech_to_text_cif"]
    command_line += ["--arch", arch, "--criterion", "cif", *extra]
    if "--cpu" not in extra and not any(flag in extra for flag in ("--fp16", "--bf16", "--device-id")):
        command_line.append("--cpu")
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, command_line))
    task = tasks.setup_task(cfg.task)
    return cfg, task, task.build_model(cfg.model), task.build_criterion(cfg.criterion)


def fairseq_cli(module: str, data_dir: Path, *args: str) -> List[str]:
    """``python -m fairseq_cli.<module> <data> --user-dir ... --task speech_to_text_cif ...`` + args."""
    command = [sys.executable, "-m", f"fairseq_cli.{module}", str(data_dir), "--user-dir", str(PLUGIN_DIR)]
    return command + ["--task", "speech_to_text_cif", "--config-yaml", "config.yaml", *args]


def tiny_train_command(
    data_dir: Path, save_dir: Path, arch: str, criterion: str, max_update: int
) -> List[str]:
    """fairseq-train of a *_tiny architecture for a few updates on the CPU."""
    command = fairseq_cli("train", data_dir, "--train-subset", "train", "--valid-subset", "dev", "--cpu")
    command += ["--arch", arch, "--criterion", criterion, "--optimizer", "adam", "--lr", "1e-3"]
    command += ["--max-tokens", "4000", "--max-update", str(max_update), "--no-progress-bar"]
    return command + ["--save-dir", str(save_dir), "--best-checkpoint-metric", "wer"]

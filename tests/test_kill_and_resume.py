"""SIGKILL fairseq-train mid-epoch and mid-checkpoint-write, restart it, and get the uninterrupted run.

The interrupted training is killed three times before it is let finish: right after update 3 (the
checkpoint of update 2 is the last one), while the checkpoint of update 4 is being written, and while
that checkpoint is being copied to checkpoint_last.pt. After each kill checkpoint_last.pt must load;
each restart must resume from the update, learning rate and batch it holds; the final checkpoint must
equal, tensor for tensor, that of the same training run without interruption (CPU, fixed seed: fairseq
reseeds every update from --seed and the update count, and the data order from --seed and the epoch).
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fairseq import checkpoint_utils

from fairseq_setup import tiny_train_command
from killed_run import KILLED_RUN, run_killed

OPTIONS = ["--batch-size", "2", "--save-interval-updates", "2", "--seed", "7", "--disable-validation"]


def _command(data: Path, save_dir: Path):
    command = tiny_train_command(data, save_dir, "s2t_cif_transformer_tiny", "cif", max_update=6)
    assert command[1:3] == ["-m", "fairseq_cli.train"]
    return [sys.executable, str(KILLED_RUN), "fairseq-train", *command[3:], *OPTIONS]


def _state(path: Path) -> dict:
    return checkpoint_utils.load_checkpoint_to_cpu(str(path))


def _updates(path: Path) -> int:
    return _state(path)["optimizer_history"][-1]["num_updates"]


def _assert_killed(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == -9, (result.returncode, (result.stdout + result.stderr)[-3000:])


def _assert_same_tensors(a, b, where: str) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


@pytest.mark.slow  # a minute of kills and restarts; the default run keeps its budget
def test_training_killed_three_times_ends_as_the_uninterruptedrun_killed(tiny_data, tmp_path):
    uninterrupted = subprocess.Popen(
        _command(tiny_data, tmp_path / "uninterrupted"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    save_dir = tmp_path / "interrupted"
    command = _command(tiny_data, save_dir)

    _assert_killed(run_killed(command, KILL_AFTER_UPDATE=3))  # mid-epoch: 12 batches of 2 per epoch
    assert _updates(save_dir / "checkpoint_last.pt") == 2

    _assert_killed(
        run_killed(command, KILL_IN_WRITE_OF="*.pt*", KILL_IN_FILE_WRITE=1)
    )  # writing checkpoint_1_4.pt
    assert not (save_dir / "checkpoint_1_4.pt").exists()
    assert 0 < (save_dir / "checkpoint_1_4.pt.tmp").stat().st_size < 10_000
    assert _updates(save_dir / "checkpoint_last.pt") == 2

    _assert_killed(
        run_killed(command, KILL_IN_WRITE_OF="*.pt*", KILL_IN_FILE_WRITE=2)
    )  # copying checkpoint_1_4.pt to checkpoint_last.pt
    assert _updates(save_dir / "checkpoint_1_4.pt") == 4
    assert _updates(save_dir / "checkpoint_last.pt") == 2  # the copy never replaced it half-written

    finished = run_killed(command)
    log = finished.stdout + finished.stderr
    assert finished.returncode == 0, log[-3000:]
    assert "(epoch 1 @ 2 updates)" in log, log[-3000:]  # resumed from the last whole checkpoint

    assert uninterrupted.wait(timeout=600) == 0, uninterrupted.stdout.read().decode()[-3000:]
    expected = _state(tmp_path / "uninterrupted" / "checkpoint_last.pt")
    resumed = _state(save_dir / "checkpoint_last.pt")
    assert resumed["optimizer_history"][-1]["num_updates"] == 6
    _assert_same_tensors(resumed["model"], expected["model"], "model")
    _assert_same_tensors(resumed["last_optimizer_state"], expected["last_optimizer_state"], "optimizer")
    for key in ("lr_scheduler_state", "num_updates"):
        assert resumed["optimizer_history"][-1][key] == expected["optimizer_history"][-1][key], key
    assert resumed["extra_state"]["train_iterator"] == expected["extra_state"]["train_iterator"]
    assert resumed["extra_state"]["train_iterator"]["iterations_in_epoch"] == 6  # mid-epoch, 6 of 12

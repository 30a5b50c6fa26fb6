"""torchrun fairseq-train over 2 CPU processes (gloo) trains one model: after K updates its parameters
equal those of 1 process that accumulates the same 2 batches per update with --update-freq 2.

fairseq gives rank r the batches r, r + 2, r + 4, ... of the epoch's batch order and one process with
--update-freq 2 takes batches 2k and 2k + 1 in update k, so both see the same utterances in the same
batches. Dropout is off: fairseq seeds it by update and by position within the update, not by rank,
so the two layouts would draw different masks for the same batch. SGD rather than Adam: Adam's
g / sqrt(v) turns the rounding noise of a gradient that is zero in exact arithmetic (a bias before a
BatchNorm) into a full step, so it would compare rounding noise rather than shared gradients.
BatchNorm's running statistics are buffers that each rank keeps for its own batches, and they are
not compared. The contrastive negatives are drawn per batch (AsrCriterion.batch_generator), so they
are the same in both layouts.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_distillation_training import HIERADIST

from fairseq_setup import fairseq_cli

UPDATES = 3
NO_DROPOUT = ["--dropout", "0", "--conv-cif-dropout", "0"]
ASG_NO_DROPOUT = ["--dropout", "0"]
CIF_NO_DROPOUT = NO_DROPOUT + ["--decoder-dropout", "0", "--decoder-attention-dropout", "0"]
CIF_NO_DROPOUT += ["--decoder-activation-dropout", "0"]

CASES = {
    "cif with ACD and LRD": ("plm_data", "s2t_cif_transformer_tiny", ["--criterion", "cif", *HIERADIST[:-3],
                             "--num-contrastive-negative-samples", "20", *CIF_NO_DROPOUT]),
    "ctc_asr": ("tiny_data", "s2t_ctc_conformer_tiny", ["--criterion", "ctc_asr", *NO_DROPOUT]),
}  # fmt: skip
SLOW_CASES = {
    "cif": ("tiny_data", "s2t_cif_transformer_tiny", ["--criterion", "cif", *CIF_NO_DROPOUT]),
    "ctc_asr with cosine knowledge transfer": (
        "plm_data", "s2t_ctc_conformer_tiny", ["--criterion", "ctc_asr", "--apply-knowledge-transfer",
        "--bert-distill-feat-dim", "32", "--kt-loss-type", "cosine", *NO_DROPOUT]),
    "ctc_asr with contrastive knowledge transfer": (
        "plm_data", "s2t_ctc_conformer_tiny", ["--criterion", "ctc_asr", "--apply-knowledge-transfer",
        "--bert-distill-feat-dim", "32", "--kt-loss-type", "contrastive",
        "--num-contrastive-negative-samples", "20", *NO_DROPOUT]),
    "asg": ("asg_data", "s2t_asg_conformer_tiny",
            ["--criterion", "asg", "--linseg-updates", "2", *ASG_NO_DROPOUT]),
}  # fmt: skip


def _train(data: Path, save_dir: Path, arch: str, options, processes: int, update_freq: int) -> dict:
    command = fairseq_cli("train", data, "--train-subset", "train", "--disable-validation", "--cpu")
    command += ["--arch", arch, *options, "--optimizer", "sgd", "--lr", "0.05", "--batch-size", "4"]
    command += ["--required-batch-size-multiple", "1", "--max-update", str(UPDATES), "--seed", "3"]
    command += ["--update-freq", str(update_freq), "--no-progress-bar", "--log-interval", "1"]
    command += ["--no-epoch-checkpoints", "--save-dir", str(save_dir)]
    if processes > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
        command = launch + [str(processes), *command[1:], "--distributed-backend", "gloo"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    state = torch.load(save_dir / "checkpoint_last.pt", map_location="cpu", weights_only=True)
    assert state["optimizer_history"][-1]["num_updates"] == UPDATES
    return {"log": log, "model": _parameters(state["model"])}


def _parameters(state: dict) -> dict:
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    return {name: value for name, value in state.items() if not name.endswith(buffers)}


def _largest_difference(first: dict, second: dict) -> float:
    assert first.keys() == second.keys()
    return max((first[name] - second[name]).abs().max().item() for name in first)


def _check_equal_training(request, tmp_path, case, tell_apart=False):
    data_fixture, arch, options = case
    data = request.getfixturevalue(data_fixture)
    single = _train(data, tmp_path / "single", arch, options, processes=1, update_freq=2)
    double = _train(data, tmp_path / "double", arch, options, processes=2, update_freq=1)
    assert "torchrun launch: rank 1 of 2" in double["log"]
    difference = _largest_difference(single["model"], double["model"])
    print(f"largest parameter difference after {UPDATES} updates: {difference:.2e}")
    assert difference < 1e-5
    if not tell_apart:
        return
    # What each process trained before gradients were shared: one batch per update. The comparison
    # above tells the two apart.
    alone = _train(data, tmp_path / "alone", arch, options, processes=1, update_freq=1)
    assert _largest_difference(single["model"], alone["model"]) > 1e-3


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_two_processes_equal_one_with_update_freq_two(request, tmp_path, case):
    _check_equal_training(request, tmp_path, case, tell_apart=case is CASES["cif with ACD and LRD"])


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW_CASES.values(), ids=SLOW_CASES.keys())
def test_two_processes_equal_one_with_update_freq_two_slow(request, tmp_path, case):
    _check_equal_training(request, tmp_path, case)

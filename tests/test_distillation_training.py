"""Hierarchical distillation end to end: PLM features -> fairseq-train with ACD and LRD."""

import shutil
import subprocess
import sys

import pytest
import torch
from fairseq import checkpoint_utils

from fairseq_setup import PLUGIN_DIR, build_from_command_line

# The paper's HieraDist options (egs/aishell1/conf/distill_*.conf) minus --ddp-backend no_c10d,
# with the tiny BERT's dimension.
HIERADIST = [
    "--apply-bert-distill", "--bert-distill-feat-dim", "32", "--apply-dec-state-dis-loss",
    "--dec-state-dis-loss-lambda", "0.01", "--no-dim-scaling-for-mse-loss",
    "--fetch-decoder-states-from", "pre_final_output_proj", "--apply-cif-contrastive-dis-cos-loss",
    "--cif-contrastive-dis-cos-loss-lambda", "1.0", "--contrastive-temperature", "0.02",
    "--num-contrastive-negative-samples", "700", "--remove-overlap-in-negs",
]  # fmt: skip


def test_fairseq_train_with_acd_and_lrd(plm_data, tmp_path):
    command = [sys.executable, "-m", "fairseq_cli.train", str(plm_data), "--user-dir", str(PLUGIN_DIR)]
    command += ["--task", "speech_to_text_cif", "--config-yaml", "config.yaml", "--train-subset", "train"]
    command += ["--valid-subset", "dev", "--arch", "s2t_cif_transformer_tiny", "--criterion", "cif"]
    command += ["--ctc-loss-lambda", "0.5", "--apply-label-smoothing", "--optimizer", "adam", "--lr", "1e-3"]
    command += [
        "--max-tokens",
        "4000",
        "--max-update",
        "3",
        "--cpu",
        "--no-progress-bar",
        "--num-workers",
        "1",
    ]
    command += ["--save-dir", str(tmp_path), *HIERADIST]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    for name in ("cif_contrastive_dis_cos_loss", "dec_state_dis_loss", "contrastive_accuracy"):
        assert f"| {name} " in log, name
    state = checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "checkpoint_last.pt"))
    projections = {k: v.shape for k, v in state["model"].items() if "distill_proj" in k}
    assert projections == {
        "cif_distill_proj.weight": torch.Size([32, 64]), "cif_distill_proj.bias": torch.Size([32]),
        "decoder_distill_proj.weight": torch.Size([32, 64]), "decoder_distill_proj.bias": torch.Size([32]),
    }  # fmt: skip


def test_only_the_enabled_projection_exists(plm_data):
    lrd_only = [arg for arg in HIERADIST[:7]]  # --apply-bert-distill ... LRD options only
    _, _, model, criterion = build_from_command_line(plm_data, "s2t_cif_transformer_tiny", lrd_only)
    assert model.cif_distill_proj is None and model.decoder_distill_proj is not None
    assert criterion.needs_plm_features


def test_missing_features_are_named_at_load_time(plm_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(plm_data, data)
    index = data / "plm_features" / "dev.index.tsv"
    lines = index.read_text().splitlines()
    index.write_text("\n".join(lines[2:]) + "\n")  # as if two utterances had never been extracted
    _, task, _, _ = build_from_command_line(data, "s2t_cif_transformer_tiny", HIERADIST)
    with pytest.raises(KeyError, match="2 utterance") as error:
        task.load_dataset("dev")
    assert all(line.split("\t")[0] in str(error.value) for line in lines[:2])

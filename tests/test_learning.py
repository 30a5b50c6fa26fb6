"""Slow: the tiny CIF model learns the synthetic characters with stock fairseq-train (about a minute)."""

import re
import subprocess
import sys

import pytest

from fairseq_setup import PLUGIN_DIR
from speech_data import write_dataset


def _values(log: str, line_marker: str, key: str):
    return [
        float(m)
        for line in log.splitlines()
        if line_marker in line
        for m in re.findall(rf"\| {key} ([\d.]+)", line)
    ]


def _train(data, arch: str, *extra: str) -> str:
    command = [
        sys.executable, "-m", "fairseq_cli.train", str(data), "--user-dir", str(PLUGIN_DIR),
        "--task", "speech_to_text_cif", "--config-yaml", "config.yaml", "--train-subset", "train",
        "--valid-subset", "dev", "--arch", arch, "--criterion", "cif",
        "--ctc-loss-lambda", "0.5", "--apply-label-smoothing", "--optimizer", "adam", "--lr", "2e-3",
        "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "50", "--max-tokens", "6000",
        "--max-update", "300", "--cpu", "--no-save", "--no-progress-bar", "--num-workers", "0",
        "--seed", "1", "--validate-interval", "5", *extra,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


@pytest.mark.slow
def test_tiny_model_learns(tmp_path):
    data = write_dataset(tmp_path / "data", {"train": 240, "dev": 30}, seed=3)
    log = _train(data, "s2t_cif_transformer_tiny")
    train_loss = _values(log, "| train | epoch", "loss")
    dev_cer = _values(log, "valid on 'dev' subset", "uer")
    assert len(train_loss) > 10 and len(dev_cer) > 3, log[-3000:]
    assert train_loss[-1] < 0.3 * train_loss[0], train_loss
    assert dev_cer[0] > 50.0 and dev_cer[-1] < 15.0, dev_cer

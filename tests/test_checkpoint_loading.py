"""fairseq checkpoints round-trip under torch's weights-only loading, and unsafe pickles are refused.

A real checkpoint is written by stock fairseq-train with an argparse-configured architecture
(``lstm_lm``: like every speech model its checkpoint holds an ``argparse.Namespace``).
"""

import builtins
import io
import pickle
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fairseq import checkpoint_utils

import cif_plugin  # noqa: F401  (installs the allow-list, as --user-dir does)

PLUGIN_DIR = Path(cif_plugin.__file__).resolve().parent
TRAIN_ARGS = [
    "--task",
    "language_modeling",
    "--arch",
    "lstm_lm",
    "--decoder-layers",
    "1",
    "--decoder-embed-dim",
    "16",
    "--decoder-hidden-size",
    "16",
    "--decoder-out-embed-dim",
    "16",
    "--tokens-per-sample",
    "32",
    "--sample-break-mode",
    "eos",
    "--max-tokens",
    "256",
    "--optimizer",
    "adam",
    "--lr",
    "1e-3",
    "--cpu",
    "--no-progress-bar",
    "--seed",
    "1",
    "--user-dir",
    str(PLUGIN_DIR),
]


def _run(module: str, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{module} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    """A two-update fairseq-train run on a tiny text corpus; returns its folder."""
    root = tmp_path_factory.mktemp("lm")
    rng = random.Random(0)
    words = "a b c d e f g h".split()
    for split, lines in (("train", 200), ("valid", 20)):
        text = "\n".join(" ".join(rng.choices(words, k=rng.randint(3, 9))) for _ in range(lines))
        (root / f"{split}.txt").write_text(text + "\n")
    _run(
        "fairseq_cli.preprocess",
        "--only-source",
        "--trainpref",
        "train.txt",
        "--validpref",
        "valid.txt",
        "--destdir",
        "bin",
        "--workers",
        "1",
        cwd=root,
    )
    _run("fairseq_cli.train", "bin", *TRAIN_ARGS, "--max-update", "2", "--save-dir", "ckpt", cwd=root)
    return root


def test_stock_torch_load_refuses_the_checkpoint_without_the_allow_list(lm_run):
    """Without the plugin torch's weights-only loader rejects the Namespace: the allow-list is needed."""
    script = "import sys, torch\ntorch.load(sys.argv[1])"
    result = subprocess.run(
        [sys.executable, "-c", script, str(lm_run / "ckpt" / "checkpoint_last.pt")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "argparse.Namespace" in result.stderr


def test_fairseq_checkpoint_round_trips_with_weights_only(lm_run):
    path = lm_run / "ckpt" / "checkpoint_last.pt"
    state = checkpoint_utils.load_checkpoint_to_cpu(str(path))
    unsafe = torch.load(path, weights_only=False)  # the oracle: a full, trusted unpickle
    assert state["model"].keys() == unsafe["model"].keys()
    for name, tensor in unsafe["model"].items():
        assert torch.equal(state["model"][name], tensor), name
    assert state["cfg"]["model"].arch == "lstm_lm"
    assert state["optimizer_history"][-1]["num_updates"] == 2


def test_training_resumes_from_checkpoint_last(lm_run):
    log = _run("fairseq_cli.train", "bin", *TRAIN_ARGS, "--max-update", "4", "--save-dir", "ckpt", cwd=lm_run)
    assert "Loaded checkpoint" in log and "@ 2 updates" in log
    state = checkpoint_utils.load_checkpoint_to_cpu(str(lm_run / "ckpt" / "checkpoint_last.pt"))
    assert state["optimizer_history"][-1]["num_updates"] == 4


class _ExecutesCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_pickle_carrying_a_callable_is_refused(tmp_path):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _ExecutesCodeWhenUnpickled(marker)}, path)
    with pytest.raises(pickle.UnpicklingError, match="exec"):
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert not marker.exists()


def test_numpy_scalars_in_checkpoints_load():
    buffer = io.BytesIO()
    extra_state = {
        "best": np.float64(0.25),
        "epoch": np.int64(3),
        "lr": np.float32(0.5),
        "done": np.bool_(True),
    }
    torch.save({"extra_state": extra_state}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    assert state["extra_state"] == extra_state
    assert all(type(state["extra_state"][k]) is type(v) for k, v in extra_state.items())

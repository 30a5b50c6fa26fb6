"""The package's layering, checked on the source: which packages may import which, and that the
building blocks work with fairseq made unimportable (docs/architecture.md)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cif_plugin"

# package -> the cif_plugin packages (and third-party roots) it must never import.
FORBIDDEN = {
    "modules": {"models", "criterions", "generation", "tasks", "inference", "ops", "fairseq", "fairseq_cli"},
    "ops": {"models", "criterions", "generation", "tasks", "inference", "fairseq", "fairseq_cli"},
    "criterions": {"generation", "models", "tasks", "inference"},
    "generation": {"models", "criterions", "tasks", "inference"},
    "models": {"criterions", "tasks", "inference"},
    # the ONNX runtime runs without torch and fairseq (tests/test_onnx_export.py runs it so)
    "runtime": {
        "modules",
        "models",
        "criterions",
        "generation",
        "tasks",
        "export",
        "torch",
        "torchaudio",
        "fairseq",
        "fairseq_cli",
    },  # fmt: skip
}


def _imported_roots(path: Path):
    """(line, target) for every import of a file: 'fairseq' for third-party roots, the first
    sub-package name for imports inside cif_plugin."""
    module_parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package_parts = module_parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                yield node.lineno, parts[1] if parts[0] == "cif_plugin" and len(parts) > 1 else parts[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package_parts[: len(package_parts) - node.level + 1]
                parts = [*base, *(node.module.split(".") if node.module else [])]
            else:
                parts = node.module.split(".")
            if parts[0] == "cif_plugin":
                targets = parts[1:2] or [alias.name for alias in node.names]
                for target in targets:
                    yield node.lineno, target
            else:
                yield node.lineno, parts[0]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_up_the_layers(package):
    offending = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for line, target in _imported_roots(path)
        if target in FORBIDDEN[package]
    ]
    assert not offending, "\n".join(offending)


def test_layer_check_sees_relative_and_absolute_imports(tmp_path):
    """The checker itself: a planted upward import is found (so the test above can fail)."""
    planted = PACKAGE / "modules" / "_planted_for_test.py"
    planted.write_text("from ..criterions import cif_losses\nimport fairseq.models\n", encoding="utf-8")
    try:
        assert [target for _, target in _imported_roots(planted)] == ["criterions", "fairseq"]
    finally:
        planted.unlink()


BLOCK_FAIRSEQ = """
import importlib.abc, sys

class _NoFairseq(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("fairseq", "fairseq_cli"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None

sys.meta_path.insert(0, _NoFairseq())
"""

USE_WITHOUT_FAIRSEQ = """
import torch
from torch import nn
from cif_plugin.modules import Cif, CifWeightPredictor, Conv2dSubsampler, PoolingConformerEncoder
from cif_plugin.ops.ctc import ctc_greedy_tokens, ctc_loss_sum
from cif_plugin.ops.asg import asg_loss

class Block(nn.Module):  # any block with the encoder's calling convention
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 16)

    def forward(self, x, padding_mask, pos_emb):
        return x + self.linear(x).masked_fill(padding_mask.unsqueeze(-1), 0.0)

torch.manual_seed(0)
encoder = PoolingConformerEncoder(Conv2dSubsampler(20, [8], [3], 16), Block, 3, [1, 2], dropout=0.0)
cif = Cif(CifWeightPredictor(16, "conv", conv_channels=8), input_dim=16).eval()
features, lengths = torch.randn(2, 50, 20), torch.tensor([50, 31])
frames, frame_lengths = encoder(features, lengths)
out = cif(frames, frame_lengths, tail_threshold=0.4)
assert frame_lengths.tolist() == [6, 4], frame_lengths
assert out.cif_out.shape[0] == 2 and out.fire_counts.shape == (2,)
logits = torch.randn(2, 6, 5)
assert len(ctc_greedy_tokens(logits, frame_lengths, blank=0)) == 2
labels, label_lengths = torch.tensor([[1, 2], [3, 4]]), torch.tensor([2, 2])
assert torch.isfinite(ctc_loss_sum(logits, frame_lengths, labels, label_lengths, pad=0, blank=0))
assert "fairseq" not in sys.modules
print("ok")
"""


def test_building_blocks_work_without_fairseq():
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_FAIRSEQ + USE_WITHOUT_FAIRSEQ],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]


def test_the_blocker_blocks():
    """Without the blocker fairseq imports; with it, importing fairseq fails (the test above means it)."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_FAIRSEQ + "import fairseq"], capture_output=True, text=True
    )
    assert result.returncode != 0 and "blocked by the test" in result.stderr

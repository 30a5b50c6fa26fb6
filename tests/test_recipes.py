"""Slow: the AISHELL-1 recipe runs every stage with --tiny on a synthetic AISHELL-1-shaped corpus,
for the baseline and the HieraDist system (distilling a random BERT: a plumbing check)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "egs" / "aishell1"


@pytest.mark.slow
def test_aishell1_recipe_runs_every_stage_tiny():
    for generated in (RECIPE / "data" / "tiny", RECIPE / "data" / "tiny_corpus", RECIPE / "exp" / "cif_tiny"):
        shutil.rmtree(generated, ignore_errors=True)
    command = ["bash", str(RECIPE / "run.sh"), "--tiny", "--systems", "baseline hieradist"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    for stage in (0, 1, 2, 3, 4, 5, 6):
        assert f"Stage {stage}:" in log
    assert "RANDOM BERT" in log  # said honestly
    manifest = (RECIPE / "data" / "tiny" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    train_ids = [line.split("\t")[0] for line in manifest]
    originals = [utt_id for utt_id in train_ids if not utt_id.startswith("sp")]
    for factor in ("0.9", "1.1"):  # --tiny exercises speed perturbation
        copies = sorted(i for i in train_ids if i.startswith(f"sp{factor}-"))
        assert copies == sorted(f"sp{factor}-{i}" for i in originals)
    for system in ("baseline", "hieradist"):
        exp = RECIPE / "exp" / "cif_tiny" / system
        assert (exp / "avg_last_2_checkpoint.pt").is_file()
        for split, utterances in (("dev", 60), ("test", 60)):
            summary = (exp / f"cer_{split}.txt").read_text(encoding="utf-8")
            assert re.search(rf"CER [\d.]+% .* over {utterances} utterances", summary), summary
            decoded = (exp / f"decode_{split}.txt").read_text(encoding="utf-8").splitlines()
            assert sum(line.startswith("T-") for line in decoded) == utterances
    assert (
        "cif_contrastive_dis_cos_loss"
        in (RECIPE / "exp" / "cif_tiny" / "hieradist" / "train.log").read_text()
    )

"""Hotword recall, precision and F1 (hand-computed), and scripts/score_hotwords.py."""

import subprocess
import sys
from pathlib import Path

import pytest

from cif_plugin.criterions.hotword_metrics import count_hotwords, has_hotword

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_counts_by_hand():
    references = {"a": "章诚下午三点", "b": "三月五日洲语", "c": "章诚和章诚", "d": "五元"}
    hypotheses = {"a": "张成下午三点", "b": "三月五日洲语", "c": "章诚和张成", "d": "五元洲语"}
    counts = count_hotwords(references, hypotheses, ["章诚", "洲语", "无终"])
    # said: a 1, b 1, c 2 = 4; written: b 1, c 1, d 1 = 3; hits: b 1, c 1 = 2
    assert (counts.in_references, counts.in_hypotheses, counts.hits) == (4, 3, 2)
    assert counts.recall == 0.5 and counts.precision == pytest.approx(2 / 3)
    assert counts.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert has_hotword("三 月 章 诚", ["章诚"]) and not has_hotword("张成", ["章诚"])
    empty = count_hotwords({"a": "x"}, {"a": "y"}, ["章诚"])
    assert (empty.recall, empty.precision, empty.f1) == (0.0, 0.0, 0.0)


def test_score_hotwords_script(tmp_path):
    (tmp_path / "ref.txt").write_text("a 章诚下午三点\nb 三月五日\nc 五元\n", encoding="utf-8")
    (tmp_path / "hyp.txt").write_text("a 章诚下午三点\nb 三月五日\nc 五百元\n", encoding="utf-8")
    (tmp_path / "hot.txt").write_text("章诚 3.0\n洲语\n", encoding="utf-8")
    command = [sys.executable, str(SCRIPTS / "score_hotwords.py"), "--ref", str(tmp_path / "ref.txt"),
               "--hyp", str(tmp_path / "hyp.txt"), "--hotwords", str(tmp_path / "hot.txt")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "hotword recall 100.0% (1 / 1), precision 100.0% (1 / 1), F1 100.0%",
        "CER with hotwords: 0.00% over 1 utterances",
        "CER without hotwords: 16.67% over 2 utterances",  # one insertion in 4 + 2 characters
    ]

"""Hotwords on the command lines: fairseq-generate (with LM fusion), scripts/transcribe.py and the
Recognizer, each against the same search run in process."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from fairseq.data import Dictionary
from test_ctc_lm_fusion import ARPA

from cif_plugin.generation.language_models import load_fairseq_lm
from cif_plugin.generation.prefix_lm_scorers import KenLmPrefixScorer
from cif_plugin.inference import Recognizer
from cif_plugin.ops.context_graph import ContextGraph

from decoded_text import assert_same_decoding, cif_search, ctc_search, decode_in_process, printed_hypotheses
from fairseq_setup import fairseq_cli

TRANSCRIBE = Path(__file__).resolve().parents[1] / "scripts" / "transcribe.py"
HOTWORDS = "三四 20.0\n七\n"  # a pair with its own score and a single character at the default


def _generate(tiny_data, checkpoint, *extra):
    command = fairseq_cli("generate", tiny_data, "--gen-subset", "dev", "--cpu", "--scoring", "wer")
    command += ["--path", str(checkpoint), "--beam", "3", *extra]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_fairseq_generate_with_hotwords_and_lm_fusion(tiny_data, tiny_checkpoint, language_model, tmp_path):
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text(HOTWORDS, encoding="utf-8")
    result = _generate(tiny_data, tiny_checkpoint, "--lm-path", str(language_model), "--lm-weight", "0.5",
                       "--hotwords", str(hotwords), "--hotword-score", "30.0")  # fmt: skip
    assert "LM weight 0.5, 2 hotwords" in result.stderr
    dictionary = Dictionary.load(str(tiny_data / "dict.txt"))
    lm = load_fairseq_lm(str(language_model), dictionary, str(tiny_data))
    index = dictionary.index
    graph = ContextGraph([((index("三"), index("四")), 20.0), ((index("七"),), 30.0)])
    expected = decode_in_process(tiny_checkpoint, tiny_data, "dev", cif_search(3, 1, lm, 0.5, graph))
    printed = printed_hypotheses(result.stdout)
    assert_same_decoding(printed, expected)
    plain = decode_in_process(tiny_checkpoint, tiny_data, "dev", cif_search(3, 1, lm, 0.5))
    assert [h[0][0] for h in plain.values()] != [h[0][0] for h in expected.values()]


def test_an_empty_hotword_file_decodes_exactly_as_without(tiny_data, tiny_checkpoint, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# no hotwords yet\n", encoding="utf-8")
    plain = _generate(tiny_data, tiny_checkpoint)
    with_empty = _generate(tiny_data, tiny_checkpoint, "--hotwords", str(empty))
    lines = [line for line in plain.stdout.splitlines() if line[:2] in ("H-", "D-", "P-")]
    assert lines and lines == [
        line for line in with_empty.stdout.splitlines() if line[:2] in ("H-", "D-", "P-")
    ]


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hotword_audio")
    rng = np.random.default_rng(4)
    paths = []
    for index, seconds in enumerate([1.5, 2.5, 2.0]):
        paths.append(folder / f"u{index}.wav")
        soundfile.write(str(paths[-1]), 0.1 * rng.normal(size=int(seconds * 16000)), 16000)
    return paths


def _tokens(transcripts):
    return [(t.text, [(x.token, x.start, x.end) for x in t.tokens]) for t in transcripts]


def test_transcribe_cli_with_hotwords_equals_the_library(tiny_checkpoint, audio, tmp_path):
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text(HOTWORDS, encoding="utf-8")
    command = [
        sys.executable,
        str(TRANSCRIBE),
        "--model",
        str(tiny_checkpoint),
        "--beam",
        "3",  # fmt: skip
        "--no-progress",
        "--format",
        "json",
        "--hotwords",
        str(hotwords),
        *map(str, audio),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [(item["text"], [(x["token"], x["start"], x["end"]) for x in item["tokens"]])
               for item in json.loads(result.stdout)]  # fmt: skip
    recognizer = Recognizer.from_pretrained(tiny_checkpoint, beam=3, hotwords=hotwords)
    assert printed == _tokens(recognizer.transcribe(audio))


@pytest.mark.parametrize("family", ["cif", "ctc"])
def test_recognizer_hotwords_bias_and_an_empty_list_restores_the_plain_search(
    family, tiny_checkpoint, ctc_training, audio
):
    checkpoint = tiny_checkpoint if family == "cif" else ctc_training[1]
    beam = 3 if family == "cif" else 14  # CTC extends with a frame's `beam` best labels only
    recognizer = Recognizer.from_pretrained(checkpoint, beam=beam)
    plain = _tokens(recognizer.transcribe(audio))
    recognizer.set_hotwords([("七", 40.0)])  # the random-weight models hardly write 七 by themselves
    biased = recognizer.transcribe(audio)
    assert all("七" in t.text for t in biased)
    assert _tokens(biased) != plain
    recognizer.set_hotwords([])
    assert _tokens(recognizer.transcribe(audio)) == plain


def test_asg_models_refuse_hotwords(asg_checkpoint):
    with pytest.raises(ValueError, match="CIF and CTC models"):
        Recognizer.from_pretrained(asg_checkpoint, hotwords=["三四"])
    recognizer = Recognizer.from_pretrained(asg_checkpoint)
    with pytest.raises(ValueError, match="CIF and CTC models"):
        recognizer.set_hotwords(["三四"])


def test_fairseq_generate_ctc_with_hotwords_and_an_ngram_lm(tiny_data, ctc_training, tmp_path):
    arpa = tmp_path / "bigram.arpa"
    arpa.write_text(ARPA, encoding="utf-8")
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text(HOTWORDS, encoding="utf-8")
    checkpoint = ctc_training[1]
    lm = ["--ngram-lm-path", str(arpa), "--lm-weight", "0.5"]
    result = _generate(
        tiny_data, checkpoint, "--beam", "16", *lm, "--hotwords", str(hotwords), "--hotword-score", "30"
    )
    assert "2 hotwords" in result.stderr
    dictionary = Dictionary.load(str(tiny_data / "dict.txt"))
    index = dictionary.index
    graph = ContextGraph([((index("三"), index("四")), 20.0), ((index("七"),), 30.0)])
    scorer = KenLmPrefixScorer(str(arpa), dictionary)
    search = ctc_search(16, 1, scorer, lm_weight=0.5, context_graph=graph)
    expected = decode_in_process(checkpoint, tiny_data, "dev", search)
    assert_same_decoding(printed_hypotheses(result.stdout), expected)
    plain = decode_in_process(checkpoint, tiny_data, "dev", ctc_search(16, 1, scorer, lm_weight=0.5))
    assert [h[0][0] for h in plain.values()] != [h[0][0] for h in expected.values()]

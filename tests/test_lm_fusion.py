"""Shallow fusion with a stock fairseq language model trained over the ASR dictionary."""

import subprocess
from argparse import Namespace

import pytest
import torch
from fairseq.data import Dictionary

from cif_plugin.generation.language_models import load_fairseq_lm

from conftest import FAVOURITE
from decoded_text import assert_same_decoding, cif_search, decode_in_process, printed_hypotheses, split_words
from fairseq_setup import build_from_command_line, fairseq_cli


def _decode(task, model, sample, lm_path=None, lm_weight=0.0):
    args = Namespace(beam=4, nbest=1, lm_path=str(lm_path) if lm_path else None, lm_weight=lm_weight)
    generator = task.build_generator([model], args)
    return [hypotheses[0] for hypotheses in generator.generate([model], sample)]


@pytest.fixture(scope="module")
def asr(tiny_data):
    torch.manual_seed(0)
    _, task, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny")
    task.load_dataset("dev")
    dataset = task.datasets["dev"]
    return task, model.eval(), dataset.collater([dataset[i] for i in range(6)])


def test_weight_zero_equals_no_lm(asr, language_model):
    task, model, sample = asr
    for plain, fused in zip(
        _decode(task, model, sample), _decode(task, model, sample, language_model, 0.0), strict=True
    ):
        assert torch.equal(plain["tokens"], fused["tokens"])
        torch.testing.assert_close(plain["score"], fused["score"])


def test_strong_lm_weight_makes_the_decode_follow_the_lm(asr, language_model):
    task, model, sample = asr
    favourite, eos = task.target_dictionary.index(FAVOURITE), task.target_dictionary.eos()

    def words(hypotheses):  # the emitted tokens without </s>, which says nothing about the LM
        tokens = torch.cat([h["tokens"] for h in hypotheses])
        return tokens[tokens != eos]

    plain, fused = (
        words(_decode(task, model, sample)),
        words(_decode(task, model, sample, language_model, 10.0)),
    )
    assert len(fused) >= len(sample["id"]) and (fused == favourite).float().mean() > 0.9
    assert (fused == favourite).sum() > (plain == favourite).sum() + len(sample["id"])


def test_fairseq_generate_with_lm(tiny_data, tiny_checkpoint, language_model):
    """The whole command line, on an ASR checkpoint written by fairseq-train."""
    command = fairseq_cli("generate", tiny_data, "--gen-subset", "dev", "--cpu", "--scoring", "wer")
    command += ["--path", str(tiny_checkpoint), "--beam", "3"]
    command += ["--lm-path", str(language_model), "--lm-weight", "10"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "LM weight 10.0" in result.stderr
    printed = printed_hypotheses(result.stdout)
    dictionary = Dictionary.load(str(tiny_data / "dict.txt"))
    lm = load_fairseq_lm(str(language_model), dictionary, str(tiny_data))
    assert_same_decoding(
        printed, decode_in_process(tiny_checkpoint, tiny_data, "dev", cif_search(3, 1, lm, 10.0))
    )
    words = [word for hypothesis in split_words(printed) for word in hypothesis]
    assert len(printed) == 8 and sum(word == FAVOURITE for word in words) > 0.8 * len(words)

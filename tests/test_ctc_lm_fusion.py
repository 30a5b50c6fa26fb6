"""Shallow fusion in CTC prefix beam search: the search against exhaustive fused scoring, both LM
scorers against their own definitions, and fairseq-generate with a fairseq LM and an ARPA n-gram."""

import itertools
import math
import subprocess
import sys

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.data import Dictionary
from test_ctc_model import BLANK, _collapse

from cif_plugin.generation.prefix_lm_scorers import FairseqLmPrefixScorer, KenLmPrefixScorer
from cif_plugin.ops.ctc import ctc_prefix_beam_search

from conftest import FAVOURITE
from decoded_text import (
    assert_same_decoding,
    ctc_search,
    decode_in_process,
    fairseq_lm_scorer,
    printed_hypotheses,
    split_words,
)
from fairseq_setup import fairseq_cli

LN_10 = math.log(10.0)


class BigramScorer:
    """log P(label | previous label) from a table; row ``start`` is the context of the empty prefix,
    column ``end`` is </s>."""

    def __init__(self, table: torch.Tensor):
        self.table, self.start = table.tolist(), len(table) - 1
        self.end = self.start

    def reset(self):
        pass

    def prepare(self, prefixes):
        pass

    def to(self, device):
        return self

    def _context(self, prefix):
        return prefix[-1] if prefix else self.start

    def score(self, prefix, label):
        return self.table[self._context(prefix)][label]

    def end_score(self, prefix):
        return self.table[self._context(prefix)][self.end]


@pytest.mark.parametrize("lm_weight, token_bonus", [(0.8, 0.0), (1.5, 0.7), (0.0, 2.0)])
def test_fused_prefix_beam_search_equals_exhaustive_search(lm_weight, token_bonus):
    torch.manual_seed(5)
    frames, vocab = 5, 3
    log_probs = torch.log_softmax(torch.randn(frames, vocab, dtype=torch.float64) * 2, dim=-1)
    scorer = BigramScorer(torch.log_softmax(torch.randn(vocab + 1, vocab + 1, dtype=torch.float64) * 2, -1))
    by_labels = {}
    for path in itertools.product(range(vocab), repeat=frames):
        labels = tuple(_collapse(path))
        probability = math.exp(sum(log_probs[t, path[t]].item() for t in range(frames)))
        by_labels[labels] = by_labels.get(labels, 0.0) + probability

    def fused(labels, probability):
        contexts = (None, *labels)
        lm = sum(scorer.score(contexts[1 : i + 1], label) for i, label in enumerate(labels))
        lm += scorer.end_score(labels)
        return math.log(probability) + lm_weight * lm + token_bonus * len(labels)

    exhaustive = sorted(((labels, fused(labels, p)) for labels, p in by_labels.items()), key=lambda x: -x[1])
    found = ctc_prefix_beam_search(log_probs, BLANK, vocab**frames, scorer, lm_weight, token_bonus)
    assert [labels for labels, _ in found[:5]] == [labels for labels, _ in exhaustive[:5]]
    for (_, score), (_, expected) in zip(found[:5], exhaustive[:5], strict=True):
        assert score == pytest.approx(expected, rel=1e-9)


def test_fairseq_lm_scorer_batches_prefixes_of_different_lengths(tiny_data, language_model):
    lm = checkpoint_utils.load_model_ensemble([str(language_model)], arg_overrides={"data": str(tiny_data)})[
        0
    ][0]
    lm.eval()
    eos, pad = 2, 1
    scorer = FairseqLmPrefixScorer(lm, eos, pad)
    prefixes = [(), (12,), (5, 12, 12, 7)]
    scorer.prepare(prefixes)
    for prefix in prefixes:
        with torch.no_grad():
            logits, _ = lm(torch.tensor([[eos, *prefix]]))
        expected = torch.log_softmax(logits[0, -1].float(), dim=-1)
        for label in range(len(expected)):
            assert scorer.score(prefix, label) == pytest.approx(expected[label].item(), abs=1e-5)
        assert scorer.end_score(prefix) == pytest.approx(expected[eos].item(), abs=1e-5)


# A bigram model over the tiny dictionary's characters: log10 probabilities and back-off weights.
ARPA = f"""\\data\\
ngram 1=6
ngram 2=4

\\1-grams:
-1.0\t</s>
-99\t<s>\t-0.5
-5.0\t<unk>
-0.05\t{FAVOURITE}\t-0.3
-2.0\t一\t-0.2
-2.5\t二\t-0.1

\\2-grams:
-0.5\t<s> {FAVOURITE}
-0.02\t{FAVOURITE} {FAVOURITE}
-1.2\t一 二
-0.4\t{FAVOURITE} </s>

\\end\\
"""


@pytest.fixture(scope="module")
def arpa(tmp_path_factory):
    path = tmp_path_factory.mktemp("ngram") / "bigram.arpa"
    path.write_text(ARPA, encoding="utf-8")
    return path


def test_kenlm_scorer_follows_the_arpa_back_off_rule(tiny_data, arpa):
    dictionary = Dictionary.load(str(tiny_data / "dict.txt"))
    nine, one, two = (dictionary.index(symbol) for symbol in (FAVOURITE, "一", "二"))
    scorer = KenLmPrefixScorer(str(arpa), dictionary)
    assert scorer.score((), nine) == pytest.approx(-0.5 * LN_10, abs=1e-5)  # <s> 九
    assert scorer.score((nine,), nine) == pytest.approx(-0.02 * LN_10, abs=1e-5)  # 九 九
    assert scorer.score((nine,), one) == pytest.approx((-0.3 - 2.0) * LN_10, abs=1e-5)  # back-off(九) + P(一)
    assert scorer.score((nine, one), two) == pytest.approx(-1.2 * LN_10, abs=1e-5)  # 一 二
    assert scorer.end_score((nine,)) == pytest.approx(-0.4 * LN_10, abs=1e-5)  # 九 </s>
    assert scorer.end_score((nine, one)) == pytest.approx((-0.2 - 1.0) * LN_10, abs=1e-5)
    assert scorer.score((), one) == pytest.approx((-0.5 - 2.0) * LN_10, abs=1e-5)  # back-off(<s>) + P(一)


def test_kenlm_scorer_without_kenlm_names_the_file(tiny_data, arpa, monkeypatch):
    monkeypatch.setitem(sys.modules, "kenlm", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"n-gram LM .*bigram\.arpa: the kenlm module is not installed"):
        KenLmPrefixScorer(str(arpa), Dictionary.load(str(tiny_data / "dict.txt")))


def _generate(tiny_data, checkpoint, *options):
    command = fairseq_cli("generate", tiny_data, "--gen-subset", "dev", "--cpu", "--scoring", "wer")
    command += ["--path", str(checkpoint), "--max-tokens", "4000", *options]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = printed_hypotheses(result.stdout)
    assert len(printed) == 8
    return printed, result.stderr


@pytest.mark.parametrize("lm_kind", ["fairseq", "arpa"])
def test_fairseq_generate_ctc_with_a_strong_lm_follows_the_lm(
    tiny_data, ctc_training, language_model, arpa, lm_kind
):
    """Both LMs only like 九: with a large weight (and a bonus against empty outputs) it dominates."""
    lm = ["--lm-path", str(language_model)] if lm_kind == "fairseq" else ["--ngram-lm-path", str(arpa)]
    plain, _ = _generate(tiny_data, ctc_training[1], "--beam", "16")
    fused, log = _generate(
        tiny_data, ctc_training[1], "--beam", "16", *lm, "--lm-weight", "5", "--ctc-token-bonus", "8"
    )
    assert "LM weight 5.0, token bonus 8.0" in log
    dictionary = Dictionary.load(str(tiny_data / "dict.txt"))
    if lm_kind == "fairseq":
        scorer = fairseq_lm_scorer(language_model, dictionary, tiny_data)
    else:
        scorer = KenLmPrefixScorer(str(arpa), dictionary)
    search = ctc_search(16, 1, scorer, lm_weight=5.0, token_bonus=8.0)
    assert_same_decoding(fused, decode_in_process(ctc_training[1], tiny_data, "dev", search))
    words = [word for hypothesis in split_words(fused) for word in hypothesis]
    assert all(split_words(fused)) and sum(word == FAVOURITE for word in words) > 0.8 * len(words)
    assert split_words(fused) != split_words(plain)


def test_an_ngram_lm_with_a_cif_model_is_refused(tiny_data, tiny_checkpoint, arpa):
    command = fairseq_cli("generate", tiny_data, "--gen-subset", "dev", "--cpu", "--scoring", "wer")
    command += ["--path", str(tiny_checkpoint), "--ngram-lm-path", str(arpa), "--lm-weight", "1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "n-gram LMs fuse with CTC models only" in result.stderr

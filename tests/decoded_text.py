"""What fairseq-generate printed, against the same search run here in process, one utterance at a time.

The end-to-end tests use it to check that the command line decodes what the search itself finds on
the same checkpoint (options reach the search, batching changes nothing, the text is the tokens),
not only that it printed the right number of lines.
"""

import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pytest
import torch
from fairseq import checkpoint_utils

from cif_plugin.generation import CifGenerator
from cif_plugin.ops.asg import asg_viterbi, unpack_replabels
from cif_plugin.ops.ctc import ctc_blank_index, ctc_prefix_beam_search

Decoded = Dict[int, List[Tuple[str, float]]]  # utterance id -> (text, natural-log score), best first
Search = Callable[[object, dict, object], List[Tuple[List[int], float]]]


def printed_hypotheses(stdout: str) -> Decoded:
    """The D- lines of fairseq-generate (scores printed in base 2) by utterance id, in printed order."""
    decoded: Decoded = {}
    for line in stdout.splitlines():
        if line.startswith("D-"):
            name, score, text = line.split("\t")
            decoded.setdefault(int(name[2:]), []).append((text, float(score) * math.log(2)))
    return decoded


def per_utterance(checkpoint: Path, data_dir: Path, subset: str, run: Callable) -> Dict[int, object]:
    """``run(model, sample, dictionary)`` on every utterance of ``subset`` alone, by utterance id."""
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides={"data": str(data_dir)}
    )
    model = models[0].eval()
    task.load_dataset(subset)
    dataset, dictionary = task.datasets[subset], task.target_dictionary
    results = {}
    with torch.no_grad():
        for index in range(len(dataset)):
            sample = dataset.collater([dataset[index]])
            results[int(sample["id"][0])] = run(model, sample, dictionary)
    return results


def decode_in_process(checkpoint: Path, data_dir: Path, subset: str, search: Search) -> Decoded:
    """``search`` on every utterance of ``subset`` alone; text = its tokens joined by spaces,
    ``</s>`` dropped."""

    def decode(model, sample, dictionary):
        return [
            (" ".join(dictionary[t] for t in tokens if t != dictionary.eos()), score)
            for tokens, score in search(model, sample, dictionary)
        ]

    return per_utterance(checkpoint, data_dir, subset, decode)


def assert_same_decoding(printed: Decoded, expected: Decoded, rel: float = 1e-4) -> None:
    assert sorted(printed) == sorted(expected), "fairseq-generate decoded other utterances"
    for utterance, hypotheses in expected.items():
        assert [text for text, _ in printed[utterance]] == [text for text, _ in hypotheses], utterance
        for (_, score), (_, reference) in zip(printed[utterance], hypotheses, strict=True):
            assert score == pytest.approx(reference, rel=rel, abs=1e-4), utterance


def cif_search(beam: int, nbest: int, lm=None, lm_weight: float = 0.0, context_graph=None) -> Search:
    def search(model, sample, dictionary):
        generator = CifGenerator(
            model, dictionary, beam=beam, nbest=nbest, lm=lm, lm_weight=lm_weight, context_graph=context_graph
        )
        return [(h["tokens"].tolist(), h["score"].item()) for h in generator.generate([model], sample)[0]]

    return search


def _ctc_log_probs(model, sample) -> torch.Tensor:
    output = model(**sample["net_input"])
    length = int(output["encoder_lengths"][0])
    return torch.log_softmax(output["ctc_logits"][0, :length].float(), dim=-1)


def ctc_search(
    beam: int, nbest: int, scorer=None, lm_weight: float = 0.0, token_bonus: float = 0.0, context_graph=None
) -> Search:
    """Greedy: the arg-max path collapsed, scored by its log-probability; else prefix beam search."""

    def search(model, sample, dictionary):
        log_probs, blank = _ctc_log_probs(model, sample), ctc_blank_index(dictionary)
        if beam == 1 and scorer is None and token_bonus == 0 and context_graph is None:
            best, path = log_probs.max(dim=-1)
            labels = [int(v) for i, v in enumerate(path) if v != blank and (i == 0 or v != path[i - 1])]
            return [(labels, best.sum().item())]
        if scorer is not None:
            scorer.to("cpu")
        found = ctc_prefix_beam_search(log_probs, blank, beam, scorer, lm_weight, token_bonus, context_graph)
        return [(list(labels), score) for labels, score in found[:nbest]]

    return search


def asg_search() -> Search:
    """The Viterbi path, equal neighbours merged, replabels unpacked."""

    def search(model, sample, dictionary):
        output = model(**sample["net_input"])
        paths, scores = asg_viterbi(output["emissions"], model.transitions, output["encoder_lengths"])
        path = [int(v) for v in paths[0]]
        merged = [v for i, v in enumerate(path) if i == 0 or v != path[i - 1]]
        return [(unpack_replabels(merged, model.replabels), float(scores[0]))]

    return search


def fairseq_lm_scorer(lm_path: Path, dictionary, data_dir: Optional[Path] = None):
    from cif_plugin.generation.language_models import load_fairseq_lm
    from cif_plugin.generation.prefix_lm_scorers import FairseqLmPrefixScorer

    lm = load_fairseq_lm(str(lm_path), dictionary, str(data_dir) if data_dir else None)
    return FairseqLmPrefixScorer(lm, dictionary.eos(), dictionary.pad())


def split_words(decoded: Decoded) -> Sequence[List[str]]:
    """Each utterance's best hypothesis as a word list."""
    return [hypotheses[0][0].split() for _, hypotheses in sorted(decoded.items())]

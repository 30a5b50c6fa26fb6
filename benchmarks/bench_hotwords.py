"""Hotword biasing on the synthetic name set: recall, precision, F1 and CER without biasing, with it,
and with it and LM fusion; then the decoding time with 10 and 1,000 hotwords against none, in one run.

Needs the hotword recipe's model and data (``bash egs/synthetic_zh/run.sh --hotwords`` runs this as
its stage 11): ``test_names`` (test voices saying names unseen in training, written with rare
homophones) is decoded with the split's hotword list (its names and as many distractors), ``test``
(no names) measures what biasing costs utterances without hotwords. Beam search, one thread, one
utterance at a time. The 1,000-hotword list is the split's list plus rare-character names from
``scripts/synthetic_names.py`` (none sounding like a name of the list). Targets (docs/hotwords.md): recall
up >= 30 points absolute, CER without hotwords no worse than +0.2 absolute, time with 1,000 hotwords
<= 1.3x without.

Usage: .venv/bin/python benchmarks/bench_hotwords.py --model exp/checkpoint_best.pt --data data/ \
           --hotwords corpus/data_aishell/hotwords/test_names.txt [--lm-path lm.pt] [--output table.md]
"""

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from fairseq import checkpoint_utils

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))

import synthetic_names  # noqa: E402
from score_cer import score  # noqa: E402

from cif_plugin.criterions.hotword_metrics import count_hotwords, has_hotword  # noqa: E402
from cif_plugin.generation import DecodingOptions  # noqa: E402
from cif_plugin.ops.hotwords import DEFAULT_HOTWORD_SCORE, read_hotwords  # noqa: E402

TARGET_RECALL_GAIN, TARGET_CER_COST, TARGET_TIME_RATIO = 30.0, 0.2, 1.3
NAMES_SPLIT, PLAIN_SPLIT = "test_names", "test"


def _load(model_path: Path, data: Path):
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(model_path)], arg_overrides={"data": str(data)}
    )
    return models[0].float().eval(), task


def _samples(task, split: str, limit: Optional[int]):
    task.load_dataset(split)
    dataset = task.datasets[split]
    return [dataset.collater([dataset[i]]) for i in range(min(len(dataset), limit or len(dataset)))]


def _decode(model, task, samples, options: DecodingOptions) -> Tuple[Dict[int, str], Dict[int, str], float]:
    """(references, hypotheses) by sample id, and the seconds the search took."""
    dictionary = task.target_dictionary
    generator = model.build_generator(dictionary, options)
    references, hypotheses, seconds = {}, {}, 0.0
    with torch.no_grad():
        for sample in samples:
            started = time.perf_counter()
            best = generator.generate([model], sample)[0][0]
            seconds += time.perf_counter() - started
            utterance = int(sample["id"][0])
            target = sample["target"][0]
            references[utterance] = dictionary.string(target[target != dictionary.pad()])
            hypotheses[utterance] = dictionary.string(best["tokens"])
    plain = {u: "".join(t.split()) for u, t in references.items()}
    return plain, {u: "".join(t.split()) for u, t in hypotheses.items()}, seconds


def _cer(references: Dict[int, str], hypotheses: Dict[int, str]) -> float:
    total, _ = score(references, hypotheses)
    return 100.0 * total.errors / max(total.reference_length, 1)


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, required=True, help="the hotword recipe's checkpoint")
    parser.add_argument(
        "--data", type=Path, required=True, help="its prepared data folder (test_names, test)"
    )
    parser.add_argument("--hotwords", type=Path, required=True, help="the test_names hotword list")
    parser.add_argument(
        "--lm-path", type=Path, help="a fairseq LM over the same dictionary (biasing + LM row)"
    )
    parser.add_argument("--lm-weight", type=float, default=0.3, help="LM weight in shallow fusion")
    parser.add_argument("--beam", type=int, default=10, help="beam size")
    parser.add_argument("--hotword-score", type=float, default=DEFAULT_HOTWORD_SCORE, help="per-token bonus")
    parser.add_argument(
        "--limit", type=int, help="decode at most this many utterances of each split (a quick check)"
    )
    parser.add_argument("--output", type=Path, help="also write the tables here (Markdown)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, task = _load(args.model, args.data)
    hotwords = [h.text for h in read_hotwords(args.hotwords)]
    names, plain = _samples(task, NAMES_SPLIT, args.limit), _samples(task, PLAIN_SPLIT, args.limit)
    base = dict(beam=args.beam, hotword_score=args.hotword_score, data_dir=str(args.data))
    configurations = [("no biasing", {}), ("biasing", {"hotwords": hotwords})]
    if args.lm_path:
        lm = {"lm_path": str(args.lm_path), "lm_weight": args.lm_weight}
        configurations += [("LM only", lm), ("biasing + LM", {"hotwords": hotwords, **lm})]
    lines = [
        f"Hotwords: {len(hotwords)} ({NAMES_SPLIT}: {len(names)} utterances, {PLAIN_SPLIT}: {len(plain)}), "
        f"beam {args.beam}, hotword score {args.hotword_score}"
        + (f", LM weight {args.lm_weight}" if args.lm_path else ""),
        "",
        "| decoding | recall | precision | F1 | CER with hotwords | CER without hotwords |",
        "|---|---|---|---|---|---|",
    ]
    rows = {}
    for label, extra in configurations:
        options = DecodingOptions(**base, **extra)
        references, hypotheses, _ = _decode(model, task, names, options)
        plain_references, plain_hypotheses, _ = _decode(model, task, plain, options)
        counts = count_hotwords(references, hypotheses, hotwords)
        assert all(has_hotword(r, hotwords) for r in references.values()), "test_names: each says a hotword"
        assert not any(has_hotword(r, hotwords) for r in plain_references.values())
        plain_cer = _cer(plain_references, plain_hypotheses)
        rows[label] = (100 * counts.recall, plain_cer)
        lines.append(
            f"| {label} | {100 * counts.recall:.1f} % | {100 * counts.precision:.1f} % "
            f"| {100 * counts.f1:.1f} % | {_cer(references, hypotheses):.2f} % | {plain_cer:.2f} % |"
        )
        print(lines[-1], flush=True)
    gain = rows["biasing"][0] - rows["no biasing"][0]
    cost = rows["biasing"][1] - rows["no biasing"][1]
    lines += [
        "",
        f"recall gain {gain:+.1f} points (target >= +{TARGET_RECALL_GAIN}): "
        + _verdict(gain >= TARGET_RECALL_GAIN),
        f"CER without hotwords {cost:+.2f} (target <= +{TARGET_CER_COST}): "
        + _verdict(cost <= TARGET_CER_COST),
        "",
        "| hotwords | search seconds | x no biasing |",
        "|---|---|---|",
    ]
    timed = names + plain
    thousand = synthetic_names.names_unlike(hotwords, 1000)
    seconds = {}
    for count, phrases in [(0, None), (10, hotwords[:10]), (1000, thousand), (0, None)]:  # none twice: warm
        options = DecodingOptions(**base, hotwords=phrases)
        seconds[count] = _decode(model, task, timed, options)[2]
    for count in (0, 10, 1000):
        lines.append(f"| {count} | {seconds[count]:.2f} | {seconds[count] / seconds[0]:.2f}x |")
    ratio = seconds[1000] / seconds[0]
    lines += [
        "",
        f"1,000 hotwords {ratio:.2f}x (target <= {TARGET_TIME_RATIO}x): "
        + _verdict(ratio <= TARGET_TIME_RATIO),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output:
        temporary = args.output.with_name(args.output.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

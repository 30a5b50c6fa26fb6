"""Mean and spread of the CER of several runs (e.g. the same recipe trained with different seeds).

Reads the per-utterance files ``scripts/score_cer.py --per-utterance`` writes, one per run, and prints
each run's CER, their mean, sample standard deviation and range. Every run must score the same
utterances (the same test set), or the mean would average different things.

Usage: python scripts/cer_over_runs.py [--name test] exp/seed1/cer_test.tsv exp/seed2/cer_test.tsv ...
"""

import argparse
import csv
import statistics
import sys
from pathlib import Path
from typing import List, Optional, Tuple

EDIT_COLUMNS = ("substitutions", "deletions", "insertions")


def read_run(path: Path) -> Tuple[Tuple[str, ...], float]:
    """A per-utterance file -> (its sorted utterance ids, its CER in percent)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        raise ValueError(f"{path} scores no utterance")
    missing = {"id", "reference_length", *EDIT_COLUMNS} - set(rows[0])
    if missing:
        raise ValueError(f"{path} is not a score_cer.py --per-utterance file (no {sorted(missing)} column)")
    errors = sum(int(row[column]) for row in rows for column in EDIT_COLUMNS)
    length = sum(int(row["reference_length"]) for row in rows)
    return tuple(sorted(row["id"] for row in rows)), 100.0 * errors / max(length, 1)


def summarise(cers: List[float]) -> str:
    mean = statistics.fmean(cers)
    spread = statistics.stdev(cers) if len(cers) > 1 else 0.0
    return (
        f"CER mean {mean:.2f}% ± {spread:.2f} (sample std), range {min(cers):.2f}-{max(cers):.2f}% "
        f"over {len(cers)} runs: " + ", ".join(f"{cer:.2f}%" for cer in cers)
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="score_cer.py --per-utterance files, one per run")
    parser.add_argument("--name", default="", help="label printed before the summary (e.g. the test set)")
    args = parser.parse_args(argv)
    runs = [read_run(path) for path in args.runs]
    for path, (ids, _) in zip(args.runs, runs, strict=True):
        if ids != runs[0][0]:
            parser.error(f"{path} scores other utterances than {args.runs[0]}")
    print(f"{args.name + ': ' if args.name else ''}{summarise([cer for _, cer in runs])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

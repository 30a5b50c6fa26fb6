"""Character error rate with substitution, deletion and insertion counts, per corpus and utterance.

Inputs, either:
- ``--generate-output``: fairseq-generate's log (``T-<i>`` references, ``D-<i>`` detokenised
  hypotheses, the first one of each sample when ``--nbest`` > 1) with ``--manifest``, the split's TSV,
  to key the results by utterance id (fairseq numbers samples by their manifest row);
- ``--hyp`` and ``--ref``: text files of ``<utterance id> <text>`` lines.

Texts are compared character by character with all whitespace removed. A deletion is a reference
character missing from the hypothesis; an insertion is an extra hypothesis character.

Usage: python scripts/score_cer.py --generate-output gen.txt --manifest data/test.tsv [--show 5]
       python scripts/score_cer.py --hyp hyp.txt --ref ref.txt [--per-utterance cer.tsv]
"""

import argparse
import csv
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from cif_plugin.criterions.error_rates import EditCounts, align_counts

__all__ = [
    "EditCounts",
    "add_input_arguments",
    "align_counts",
    "read_generate_output",
    "read_inputs",
    "read_text_file",
]


def _characters(text: str) -> str:
    return "".join(text.split())


def read_text_file(path: Path) -> Dict[str, str]:
    """``<utterance id> <text>`` lines -> {id: text without whitespace}."""
    texts = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt_id, _, text = line.strip().partition(" ")
        if utt_id in texts:
            raise ValueError(f"{path}:{number}: utterance {utt_id} appears twice")
        texts[utt_id] = _characters(text)
    return texts


def read_generate_output(path: Path, manifest: Optional[Path]) -> Tuple[Dict[str, str], Dict[str, str]]:
    """(references, hypotheses) keyed by utterance id (or by sample index without a manifest)."""
    references, hypotheses = {}, {}
    pattern = re.compile(r"^([TD])-(\d+)\t(.*)$")
    for line in path.read_text(encoding="utf-8").splitlines():
        match = pattern.match(line)
        if not match:
            continue
        kind, index, rest = match.groups()
        if kind == "T":
            references[index] = _characters(rest)
        elif index not in hypotheses:  # the first (best) hypothesis of the sample
            hypotheses[index] = _characters(rest.split("\t", 1)[1] if "\t" in rest else "")
    if not references:
        raise ValueError(f"{path} has no T-<i> lines: is it fairseq-generate output of a split with targets?")
    if manifest is not None:
        with open(manifest, encoding="utf-8") as handle:
            ids = [row["id"] for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
        if max(int(i) for i in references) >= len(ids):
            raise ValueError(f"{path} has sample indices beyond the {len(ids)} rows of {manifest}")
        references = {ids[int(i)]: text for i, text in references.items()}
        hypotheses = {ids[int(i)]: text for i, text in hypotheses.items()}
    return references, hypotheses


def score(references: Dict[str, str], hypotheses: Dict[str, str]) -> Tuple[EditCounts, Dict[str, EditCounts]]:
    missing = sorted(set(references) - set(hypotheses))
    if missing:
        raise ValueError(f"{len(missing)} utterances have no hypothesis, e.g. {missing[:5]}")
    per_utterance = {utt_id: align_counts(ref, hypotheses[utt_id]) for utt_id, ref in references.items()}
    total = EditCounts()
    for counts in per_utterance.values():
        total += counts
    return total, per_utterance


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """``--generate-output`` with ``--manifest``, or ``--hyp`` and ``--ref`` (also score_hotwords.py)."""
    parser.add_argument("--generate-output", type=Path, help="fairseq-generate output (T-/D- lines)")
    parser.add_argument(
        "--manifest", type=Path, help="the decoded split's TSV, to key results by utterance id"
    )
    parser.add_argument("--hyp", type=Path, help="hypotheses: <utterance id> <text> lines")
    parser.add_argument("--ref", type=Path, help="references: <utterance id> <text> lines")


def read_inputs(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> Tuple[Dict[str, str], Dict[str, str]]:
    """(references, hypotheses) from the options of :func:`add_input_arguments`."""
    if args.generate_output is not None:
        return read_generate_output(args.generate_output, args.manifest)
    if args.hyp is not None and args.ref is not None:
        return read_text_file(args.ref), read_text_file(args.hyp)
    parser.error("give --generate-output, or --hyp and --ref")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_input_arguments(parser)
    parser.add_argument(
        "--per-utterance", type=Path, help="write id, S, D, I, reference length, ref, hyp (TSV)"
    )
    parser.add_argument("--show", type=int, default=0, help="print this many reference/hypothesis pairs")
    args = parser.parse_args(argv)
    references, hypotheses = read_inputs(args, parser)
    total, per_utterance = score(references, hypotheses)
    if args.per_utterance is not None:
        temporary = args.per_utterance.with_name(args.per_utterance.name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(
                "id\tsubstitutions\tdeletions\tinsertions\treference_length\treference\thypothesis\n"
            )
            for utt_id, c in sorted(per_utterance.items()):
                row = [utt_id, c.substitutions, c.deletions, c.insertions, c.reference_length]
                handle.write("\t".join(map(str, row + [references[utt_id], hypotheses[utt_id]])) + "\n")
        os.replace(temporary, args.per_utterance)
    for utt_id in sorted(references)[: args.show]:
        print(f"{utt_id}\n  REF: {references[utt_id]}\n  HYP: {hypotheses[utt_id]}")
    cer = 100.0 * total.errors / max(total.reference_length, 1)
    print(
        f"CER {cer:.2f}% [{total.errors} / {total.reference_length}: {total.substitutions} substitutions, "
        f"{total.deletions} deletions, {total.insertions} insertions] over {len(references)} utterances"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Hotword recall, precision and F1, beside the CER of the utterances that say a hotword and of those
that do not (docs/hotwords.md).

Inputs, as scripts/score_cer.py takes them: ``--generate-output`` (fairseq-generate's log) with
``--manifest``, or ``--hyp`` and ``--ref`` (``<utterance id> <text>`` lines); and ``--hotwords``, the
hotword list (one phrase a line, an optional score after it, as ``--hotwords`` of decoding reads it).

Usage: python scripts/score_hotwords.py --generate-output gen.txt --manifest data/test_names.tsv \
           --hotwords corpus/data_aishell/hotwords/test_names.txt
"""

import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional

from cif_plugin.criterions.hotword_metrics import count_hotwords, has_hotword
from cif_plugin.ops.hotwords import read_hotwords

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, also when run through runpy
from score_cer import add_input_arguments, read_inputs, score  # noqa: E402

__all__ = ["hotword_report", "main"]


def _cer(references: Dict[str, str], hypotheses: Dict[str, str]) -> str:
    if not references:
        return "n/a (no utterance)"
    total, _ = score(references, hypotheses)
    return f"{100.0 * total.errors / max(total.reference_length, 1):.2f}% over {len(references)} utterances"


def hotword_report(references: Dict[str, str], hypotheses: Dict[str, str], hotwords: List[str]) -> List[str]:
    """The report's lines: recall, precision, F1, then the CER with and without hotwords."""
    counts = count_hotwords(references, hypotheses, hotwords)
    said = {u: r for u, r in references.items() if has_hotword(r, hotwords)}
    unsaid = {u: r for u, r in references.items() if u not in said}
    return [
        f"hotword recall {100 * counts.recall:.1f}% ({counts.hits} / {counts.in_references}), "
        f"precision {100 * counts.precision:.1f}% ({counts.hits} / {counts.in_hypotheses}), "
        f"F1 {100 * counts.f1:.1f}%",
        f"CER with hotwords: {_cer(said, hypotheses)}",
        f"CER without hotwords: {_cer(unsaid, hypotheses)}",
    ]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_input_arguments(parser)
    parser.add_argument("--hotwords", type=Path, required=True, help="the hotword list (one phrase a line)")
    args = parser.parse_args(argv)
    references, hypotheses = read_inputs(args, parser)
    hotwords = [h.text for h in read_hotwords(args.hotwords)]
    print("\n".join(hotword_report(references, hypotheses, hotwords)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Align a transcript to audio with a CTC head: start and end time of every character.

Works with ``s2t_ctc_conformer`` checkpoints and with the CTC head of ``s2t_cif_transformer`` ones.
The transcript's characters (spaces ignored) are forced through the CTC outputs (Viterbi best path,
torchaudio's forced_align); a character outside the dictionary is an error naming it.

Usage: python scripts/align.py --model ckpt.pt --audio a.wav --text "今天天气很好" [--format json]
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from cif_plugin.inference.cli import add_model_arguments, recognizer_from_args
from cif_plugin.tasks.fbank_features import AudioError


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.add_argument("--audio", type=Path, required=True, help="one audio file (any rate, mono or stereo)")
    parser.add_argument("--text", required=True, help="its transcript (characters; spaces are ignored)")
    parser.add_argument("--format", choices=["text", "json"], default="text", help="output format")
    args = parser.parse_args(argv)
    recognizer = recognizer_from_args(args)
    try:
        aligned = recognizer.align(args.audio, args.text)
    except (AudioError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    tokens = [{"token": t.token, "start": t.start, "end": t.end} for t in aligned.tokens]
    if args.format == "json":
        print(
            json.dumps(
                {"file": aligned.name, "duration": aligned.duration, "tokens": tokens}, ensure_ascii=False
            )
        )
    else:
        print(" ".join(f"{t['token']}[{t['start']:.2f}-{t['end']:.2f}]" for t in tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())

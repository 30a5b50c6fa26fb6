"""Transcribe audio with any trained model of the plugin (CIF, CTC or ASG), with token times.

Inputs: audio files and folders (searched recursively for audio files), ``--list`` files (one path
per line) and Kaldi ``--wav-scp`` files (``<id> <path>``; piped commands are refused). Any sample
rate and channel count soundfile reads works (averaged to mono, resampled to 16 kHz). Files longer
than ``--max-segment-seconds`` are split at pauses (silero-vad) and decoded in pieces, with their
token times on the file's clock. Utterances are decoded in batches sorted by length.

A file that cannot be read or decoded is reported on stderr (and as an entry with its error in the
json/jsonl formats) while every other file is transcribed; the exit status is then 1.

Usage: python scripts/transcribe.py --model exp/package audio/ [--format srt] [--output out.srt]
       python scripts/transcribe.py --model exp/checkpoint_best.pt --wav-scp data/wav.scp --format jsonl
"""

import argparse
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

from tqdm import tqdm

from cif_plugin.inference.cli import add_model_arguments, recognizer_from_args
from cif_plugin.inference.inputs import collect_inputs
from cif_plugin.inference.output_formats import FORMATS, format_transcripts

__all__ = ["main"]


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("audio", type=Path, nargs="*", help="audio files or folders")
    parser.add_argument(
        "--list", type=Path, action="append", default=[], help="a file of audio paths, one per line"
    )
    parser.add_argument(
        "--wav-scp", type=Path, action="append", default=[], help="a Kaldi wav.scp (<id> <path>)"
    )
    add_model_arguments(parser)
    parser.add_argument("--format", choices=list(FORMATS), default="text", help="output format")
    parser.add_argument("--output", type=Path, help="write here (atomically) instead of standard output")
    parser.add_argument("--batch-size", type=int, default=16, help="utterances per batch")
    parser.add_argument(
        "--max-segment-seconds",
        type=float,
        default=30.0,
        help="longer files are split at pauses (silero-vad)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    args = parser.parse_args(argv)
    try:
        inputs = collect_inputs(args.audio, args.list, args.wav_scp)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not inputs:
        parser.error("no audio: give files, folders, --list or --wav-scp")
    recognizer = recognizer_from_args(args, max_segment_seconds=args.max_segment_seconds)
    transcripts, audio_seconds, started = [], 0.0, time.perf_counter()
    progress = tqdm(total=len(inputs), unit="file", disable=args.no_progress, file=sys.stderr)
    for transcript in recognizer.iter_transcribe(inputs, batch_size=args.batch_size):
        transcripts.append(transcript)
        audio_seconds += transcript.duration
        if not transcript.ok:
            tqdm.write(f"error: {transcript.error}", file=sys.stderr)
        progress.update(1)
        if audio_seconds > 0:
            progress.set_postfix(rtf=f"{(time.perf_counter() - started) / audio_seconds:.3f}")
    progress.close()
    text = format_transcripts(transcripts, args.format)
    if args.output:
        _write_atomically(args.output, text)
    else:
        sys.stdout.write(text)
    failed = sum(not t.ok for t in transcripts)
    if failed:
        print(f"{failed} of {len(transcripts)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

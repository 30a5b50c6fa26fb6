"""Transcribe audio with any trained model of the plugin (CIF, CTC or ASG), with token times.

Inputs: audio files and folders (searched recursively for audio files), ``--list`` files (one path
per line) and Kaldi ``--wav-scp`` files (``<id> <path>``; piped commands are refused). Any sample
rate and channel count soundfile reads works (averaged to mono, resampled to 16 kHz). Files longer
than ``--max-segment-seconds`` are split at pauses (silero-vad) and decoded in pieces, with their
token times on the file's clock. Utterances are decoded in batches sorted by length.

A file that cannot be read or decoded is reported on stderr (and as an entry with its error in the
json/jsonl formats) while every other file is transcribed; the exit status is then 1.

With ``--streaming`` each file is fed to a streaming session (docs/streaming.md) in pieces of
``--chunk-ms`` of audio, as a live stream would arrive: the partial result is printed on stderr each
time tokens are emitted (``<name> [<seconds of audio>] <text>``), the final results go out in
``--format``; json and jsonl then give each token its ``emitted_at`` (seconds of audio received when
it was emitted). Needs a chunk-causal model (``--arch s2t_cif_transformer_streaming_tiny`` ...).

Usage: python scripts/transcribe.py --model exp/package audio/ [--format srt] [--output out.srt]
       python scripts/transcribe.py --model exp/checkpoint_best.pt --wav-scp data/wav.scp --format jsonl
       python scripts/transcribe.py --model exp/streaming.pt a.wav --streaming --chunk-ms 640 --format json
"""

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

from tqdm import tqdm

# torch-free imports only: --backend onnxruntime runs without torch and fairseq
from cif_plugin.decoding_defaults import DECODING_TAIL_THRESHOLD
from cif_plugin.inference.audio_inputs import input_name
from cif_plugin.inference.cli import add_model_arguments, recognizer_from_args
from cif_plugin.inference.inputs import collect_inputs
from cif_plugin.inference.output_formats import FORMATS, format_transcripts
from cif_plugin.inference.results import Transcript

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
    parser.add_argument(
        "--backend",
        choices=["torch", "onnxruntime"],
        default="torch",
        help="onnxruntime: --model is a folder of scripts/export_onnx.py, decoded without torch "
        "(greedy or beam search, the LM exported into the folder, hotwords, splitting at pauses)",
    )
    parser.add_argument(
        "--streaming",
        action="store_true",
        help="feed each file to a streaming session in --chunk-ms pieces; partial results on stderr",
    )
    parser.add_argument(
        "--chunk-ms",
        type=int,
        default=None,
        help="--streaming: chunk length in ms, a multiple of the model's frame (default: the model's chunk)",
    )
    args = parser.parse_args(argv)
    if args.chunk_ms is not None and not args.streaming:
        parser.error("--chunk-ms goes with --streaming")
    try:
        inputs = collect_inputs(args.audio, args.list, args.wav_scp)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not inputs:
        parser.error("no audio: give files, folders, --list or --wav-scp")
    if args.backend == "onnxruntime":
        recognizer = _onnx_recognizer(args, parser)
    else:
        recognizer = recognizer_from_args(args, max_segment_seconds=args.max_segment_seconds)
    if args.streaming:
        return _stream_all(recognizer, inputs, args)
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
    return _finish(format_transcripts(transcripts, args.format), transcripts, args)


def _onnx_recognizer(args, parser):
    """An OnnxRecognizer of --model, after refusing the options it does not have."""
    from cif_plugin.runtime import OnnxRecognizer

    unsupported = {
        "--streaming": args.streaming,
        "--lm-path": args.lm_path,
        "--ngram-lm-path": args.ngram_lm_path,
        "--data": args.data,
        # built into the folder at export (scripts/export_onnx.py takes them)
        "--ctc-token-bonus": args.ctc_token_bonus != 0,
        "--tail-threshold": args.tail_threshold != DECODING_TAIL_THRESHOLD,
    }
    given = [option for option, value in unsupported.items() if value]
    if given:
        parser.error(
            f"--backend onnxruntime does not take {', '.join(given)} (the CTC token bonus and the tail "
            "threshold are set at export: scripts/export_onnx.py)"
        )
    try:
        return OnnxRecognizer(
            args.model,
            beam=args.beam,
            onset=args.onset,
            lm_weight=args.lm_weight,
            hotwords=args.hotwords,
            hotword_score=args.hotword_score,
            max_segment_seconds=args.max_segment_seconds,
        )
    except ValueError as error:  # BundleError included: the message names the file
        parser.error(str(error))


def _finish(text: str, transcripts, args) -> int:
    """Write the formatted results; exit status 1 when an input failed."""
    if args.output:
        _write_atomically(args.output, text)
    else:
        sys.stdout.write(text)
    failed = sum(not t.ok for t in transcripts)
    if failed:
        print(f"{failed} of {len(transcripts)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0


def _stream_all(recognizer, inputs, args) -> int:
    """--streaming: every input through its own session; final results in --format."""
    from cif_plugin.inference.audio import read_input
    from cif_plugin.tasks.fbank_features import AudioError

    try:
        recognizer.stream(args.chunk_ms)  # a model or chunk that cannot stream fails before any input
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    records, transcripts = [], []
    for index, item in enumerate(inputs):
        name = input_name(item, index)
        try:
            transcript, tokens = _stream_one(recognizer, read_input(item, index), name, args)
            records.append({**transcript.to_dict(), "tokens": tokens})
        except AudioError as error:
            transcript = Transcript(name, error=str(error))
            records.append(transcript.to_dict())
            print(f"error: {error}", file=sys.stderr)
        transcripts.append(transcript)
    if args.format in ("json", "jsonl"):
        lines = [json.dumps(record, ensure_ascii=False) for record in records]
        text = (
            "\n".join(lines) + "\n"
            if args.format == "jsonl"
            else json.dumps(records, ensure_ascii=False, indent=2) + "\n"
        )
    else:
        text = format_transcripts(transcripts, args.format)
    return _finish(text, transcripts, args)


def _stream_one(recognizer, waveform, name: str, args):
    """One input fed in pieces of one chunk: (final Transcript, its tokens with emission times)."""
    from cif_plugin.tasks.fbank_features import SAMPLE_RATE

    session = recognizer.stream(args.chunk_ms)
    samples = waveform[0].numpy()
    piece = round(session.chunk_size * recognizer.frame_seconds * SAMPLE_RATE)
    for start in range(0, len(samples), piece):
        if session.accept_waveform(samples[start : start + piece]) and not args.no_progress:
            print(f"{name} [{session.seconds:.2f}s] {session.transcript.text}", file=sys.stderr, flush=True)
    session.finalize()
    transcript = dataclasses.replace(session.transcript, name=name)
    return transcript, [dataclasses.asdict(token) for token in session.emitted]


if __name__ == "__main__":
    sys.exit(main())

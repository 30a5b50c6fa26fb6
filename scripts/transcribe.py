"""Transcribe audio files with a trained CIF model, with start and end times for every token.

Any sample rate and channel count soundfile reads works (audio is averaged to mono and resampled to
16 kHz), on the CPU by default. A token ends at the encoder frame where the CIF fired it; it starts
at the first frame where the CIF has integrated more than ``--onset`` of its weight, so leading
silence and pauses are not part of it. Times are in seconds and never exceed the audio length.

The checkpoint's data folder (config.yaml and dict.txt) must exist; ``--data`` points elsewhere.

Usage: python scripts/transcribe.py --checkpoint exp/avg.pt a.wav b.flac [--format json] [--beam 10]
"""

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from fairseq import checkpoint_utils
from fairseq.data.audio.feature_transforms import CompositeAudioFeatureTransform

from cif_plugin.generation import DecodingOptions
from cif_plugin.modules import DECODING_TAIL_THRESHOLD
from cif_plugin.tasks.fbank_features import (
    FRAME_SHIFT_SECONDS,
    SAMPLE_RATE,
    AudioError,
    kaldi_fbank,
    load_waveform,
)

__all__ = ["FileDecoder", "add_decoding_arguments", "load", "token_times", "transcribe"]


def token_times(
    fire_frames: List[int], cif_weights: np.ndarray, frame_seconds: float, onset: float, duration: float
):
    """(start, end) seconds of each token from its fire frame and the cumulative CIF weight."""
    cumulative = np.cumsum(cif_weights)
    times, previous_end = [], 0.0
    for index, frame in enumerate(fire_frames):
        started = np.nonzero(cumulative > index + onset)[0]
        start_frame = min(int(started[0]), frame) if len(started) else frame
        start = max(start_frame * frame_seconds, previous_end)
        end = min((frame + 1) * frame_seconds, duration)
        start = min(start, end)
        times.append((round(start, 3), round(end, 3)))
        previous_end = end
    return times


def load(checkpoint: Path, data: Optional[Path], device: str):
    """(model, task) of a checkpoint, on ``device``, in eval mode."""
    overrides = {"data": str(data)} if data else None
    try:
        models, _, task = checkpoint_utils.load_model_ensemble_and_task(
            [str(checkpoint)], arg_overrides=overrides
        )
    except FileNotFoundError as error:
        raise SystemExit(
            f"{error}\nThe checkpoint's data folder (config.yaml, dict.txt) is missing: pass --data."
        ) from None
    return models[0].to(device).eval(), task


class FileDecoder:
    """Features -> best hypothesis for single audio files, with the task's evaluation transforms."""

    def __init__(self, model, task, args):
        self.model, self.task, self.device = model, task, args.device
        config = task.data_cfg.get_feature_transforms("test", False)
        self.transforms = CompositeAudioFeatureTransform.from_config_dict(config)
        options = DecodingOptions(
            beam=args.beam,
            lm_path=args.lm_path,
            lm_weight=args.lm_weight,
            tail_threshold=args.tail_threshold,
            data_dir=task.args.data,
        )
        self.generator = model.build_generator(task.target_dictionary, options)
        self.frame_seconds = FRAME_SHIFT_SECONDS * model.encoder.frame_stride

    def decode(self, path: Path) -> Dict:
        """features (frames, 80), duration (s), symbols, fire_frames, cif_weights (encoder frames), score."""
        waveform = load_waveform(path)
        features = kaldi_fbank(waveform)
        model_input = self.transforms(features) if self.transforms is not None else features
        src_tokens = torch.from_numpy(model_input).unsqueeze(0).to(self.device)
        src_lengths = torch.tensor([len(model_input)], device=self.device)
        best = self.generator.generate(
            [self.model], {"net_input": {"src_tokens": src_tokens, "src_lengths": src_lengths}}
        )[0][0]
        tokens = [t for t in best["tokens"].tolist() if t != self.task.target_dictionary.eos()]
        return {
            "features": features,
            "duration": waveform.shape[1] / SAMPLE_RATE,
            "symbols": [self.task.target_dictionary[t] for t in tokens],
            "fire_frames": best["fire_frames"][: len(tokens)].tolist(),
            "cif_weights": best["cif_weights"].numpy(),
            "score": float(best["score"]),
        }


def transcribe(paths: List[Path], decoder: FileDecoder, onset: float, join: bool) -> List[Dict]:
    results = []
    for path in paths:
        decoded = decoder.decode(path)
        times = token_times(
            decoded["fire_frames"], decoded["cif_weights"], decoder.frame_seconds, onset, decoded["duration"]
        )
        symbols = decoded["symbols"]
        results.append(
            {
                "file": str(path),
                "duration": round(decoded["duration"], 3),
                "text": "".join(symbols) if join else " ".join(symbols),
                "score": round(decoded["score"], 4),
                "tokens": [
                    {"token": s, "start": a, "end": b} for s, (a, b) in zip(symbols, times, strict=True)
                ],
            }
        )
    return results


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared with plot_alignment.py."""
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="a trained s2t_cif_transformer checkpoint"
    )
    parser.add_argument(
        "--data", type=Path, help="folder with config.yaml and dict.txt (default: the checkpoint's)"
    )
    parser.add_argument("--beam", type=int, default=10, help="beam size (1: greedy)")
    parser.add_argument(
        "--tail-threshold", type=float, default=DECODING_TAIL_THRESHOLD, help="CIF tail firing threshold"
    )
    parser.add_argument(
        "--lm-path", help="fairseq LM checkpoint over the same dictionary, for shallow fusion"
    )
    parser.add_argument("--lm-weight", type=float, default=0.0, help="LM weight in shallow fusion")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def quiet_logging() -> None:
    logging.getLogger("fairseq").setLevel(logging.WARNING)
    logging.getLogger("cif_plugin").setLevel(logging.WARNING)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "audio", type=Path, nargs="+", help="audio files (wav, flac, ... any rate, mono or stereo)"
    )
    add_decoding_arguments(parser)
    parser.add_argument("--format", choices=["text", "json"], default="text", help="output format")
    parser.add_argument("--onset", type=float, default=0.1, help="CIF weight at which a token starts")
    parser.add_argument("--no-join", dest="join", action="store_false", help="separate the tokens by spaces")
    args = parser.parse_args(argv)
    quiet_logging()
    model, task = load(args.checkpoint, args.data, args.device)
    try:
        results = transcribe(args.audio, FileDecoder(model, task, args), args.onset, args.join)
    except AudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        for result in results:
            print(f"{result['file']}\t{result['text']}")
            print("  " + " ".join(f"{t['token']}[{t['start']:.2f}-{t['end']:.2f}]" for t in result["tokens"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

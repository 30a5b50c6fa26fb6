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

from cif_plugin.generation import CifGenerator
from cif_plugin.tasks.fbank_features import (
    FRAME_SHIFT_SECONDS,
    SAMPLE_RATE,
    AudioError,
    kaldi_fbank,
    load_waveform,
)

__all__ = ["token_times"]


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


def transcribe(paths: List[Path], model, task, args) -> List[Dict]:
    transforms = CompositeAudioFeatureTransform.from_config_dict(
        task.data_cfg.get_feature_transforms("test", False)
    )
    lm = task.load_language_model(args.lm_path) if args.lm_path else None
    generator = CifGenerator(
        model, task.target_dictionary, args.beam, 1, args.tail_threshold, lm, args.lm_weight
    )
    frame_seconds = FRAME_SHIFT_SECONDS * model.encoder.frame_stride
    results = []
    for path in paths:
        waveform = load_waveform(path)
        duration = waveform.shape[1] / SAMPLE_RATE
        features = kaldi_fbank(waveform)
        features = transforms(features) if transforms is not None else features
        src_tokens = torch.from_numpy(features).unsqueeze(0).to(args.device)
        src_lengths = torch.tensor([len(features)], device=args.device)
        sample = {"net_input": {"src_tokens": src_tokens, "src_lengths": src_lengths}}
        best = generator.generate([model], sample)[0][0]
        tokens = [t for t in best["tokens"].tolist() if t != task.target_dictionary.eos()]
        frames = best["fire_frames"][: len(tokens)].tolist()
        times = token_times(frames, best["cif_weights"].numpy(), frame_seconds, args.onset, duration)
        symbols = [task.target_dictionary[t] for t in tokens]
        results.append(
            {
                "file": str(path),
                "duration": round(duration, 3),
                "text": "".join(symbols) if args.join else " ".join(symbols),
                "score": round(float(best["score"]), 4),
                "tokens": [
                    {"token": s, "start": a, "end": b} for s, (a, b) in zip(symbols, times, strict=True)
                ],
            }
        )
    return results


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "audio", type=Path, nargs="+", help="audio files (wav, flac, ... any rate, mono or stereo)"
    )
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="a trained s2t_cif_transformer checkpoint"
    )
    parser.add_argument(
        "--data", type=Path, help="folder with config.yaml and dict.txt (default: the checkpoint's)"
    )
    parser.add_argument("--format", choices=["text", "json"], default="text", help="output format")
    parser.add_argument("--beam", type=int, default=10, help="beam size (1: greedy)")
    parser.add_argument("--tail-threshold", type=float, default=0.4, help="CIF tail firing threshold")
    parser.add_argument(
        "--lm-path", help="fairseq LM checkpoint over the same dictionary, for shallow fusion"
    )
    parser.add_argument("--lm-weight", type=float, default=0.0, help="LM weight in shallow fusion")
    parser.add_argument("--onset", type=float, default=0.1, help="CIF weight at which a token starts")
    parser.add_argument("--no-join", dest="join", action="store_false", help="separate the tokens by spaces")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    args = parser.parse_args(argv)
    logging.getLogger("fairseq").setLevel(logging.WARNING)
    logging.getLogger("cif_plugin").setLevel(logging.WARNING)
    model, task = load(args.checkpoint, args.data, args.device)
    try:
        results = transcribe(args.audio, model, task, args)
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

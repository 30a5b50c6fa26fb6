"""Align a transcript to audio with a CTC head: start and end time of every character.

Works with ``s2t_ctc_conformer`` checkpoints and with the CTC head of ``s2t_cif_transformer`` ones.
The transcript's characters (spaces ignored) are forced through the CTC outputs (Viterbi best path,
torchaudio's forced_align); a character outside the dictionary is an error naming it.

Usage: python scripts/align.py --checkpoint ckpt.pt --audio a.wav --text "今天天气很好" [--format json]
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

import torch
from fairseq.data.audio.feature_transforms import CompositeAudioFeatureTransform

from cif_plugin.ops.ctc import ctc_blank_index, ctc_forced_align
from cif_plugin.tasks.fbank_features import (
    FRAME_SHIFT_SECONDS,
    SAMPLE_RATE,
    AudioError,
    kaldi_fbank,
    load_waveform,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transcribe import load, quiet_logging  # noqa: E402


def ctc_log_probs(model, features: torch.Tensor) -> torch.Tensor:
    """(T', V) CTC log-probabilities of one utterance's (T, F) features."""
    src_tokens, src_lengths = features.unsqueeze(0), torch.tensor([len(features)], device=features.device)
    with torch.no_grad():
        if hasattr(model, "forward_ctc"):  # the CIF model's CTC head
            logits = model.forward_ctc(model.forward_encoder(src_tokens, src_lengths)["encoder_out"])
        else:
            logits = model(src_tokens, src_lengths)["ctc_logits"]
    return torch.log_softmax(logits[0].float(), dim=-1).cpu()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, required=True, help="a CTC (or CIF) model checkpoint")
    parser.add_argument(
        "--data", type=Path, help="folder with config.yaml and dict.txt (default: the checkpoint's)"
    )
    parser.add_argument("--audio", type=Path, required=True, help="one audio file (any rate, mono or stereo)")
    parser.add_argument("--text", required=True, help="its transcript (characters; spaces are ignored)")
    parser.add_argument("--format", choices=["text", "json"], default="text", help="output format")
    parser.add_argument("--device", default="cpu", help="torch device")
    args = parser.parse_args(argv)
    quiet_logging()
    model, task = load(args.checkpoint, args.data, args.device)
    dictionary = task.target_dictionary
    characters = list("".join(args.text.split()))
    unknown = [c for c in characters if dictionary.index(c) == dictionary.unk()]
    if unknown:
        print(f"error: characters outside the dictionary: {''.join(unknown)}", file=sys.stderr)
        return 2
    try:
        waveform = load_waveform(args.audio)
    except AudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    transforms = CompositeAudioFeatureTransform.from_config_dict(
        task.data_cfg.get_feature_transforms("test", False)
    )
    features = kaldi_fbank(waveform)
    features = transforms(features) if transforms is not None else features
    log_probs = ctc_log_probs(model, torch.from_numpy(features).to(args.device))
    try:
        spans = ctc_forced_align(
            log_probs, [dictionary.index(c) for c in characters], ctc_blank_index(dictionary)
        )
    except ValueError as error:
        print(f"error: {args.audio}: {error}", file=sys.stderr)
        return 2
    frame_seconds = FRAME_SHIFT_SECONDS * model.encoder.frame_stride
    duration = waveform.shape[1] / SAMPLE_RATE
    tokens = [
        {"token": dictionary[span.label], "start": round(span.start * frame_seconds, 3),
         "end": round(min(span.end * frame_seconds, duration), 3)}
        for span in spans
    ]  # fmt: skip
    if args.format == "json":
        print(
            json.dumps(
                {"file": str(args.audio), "duration": round(duration, 3), "tokens": tokens},
                ensure_ascii=False,
            )
        )
    else:
        print(" ".join(f"{t['token']}[{t['start']:.2f}-{t['end']:.2f}]" for t in tokens))
    return 0


if __name__ == "__main__":
    sys.exit(main())

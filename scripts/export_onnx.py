"""Export a trained model (package or checkpoint; CIF, CTC or ASG) to an ONNX folder that
transcribes with onnxruntime alone (docs/onnx.md).

The folder holds encoder.onnx (CIF: conformer, CTC head, CIF weights and integrate-and-fire, with the
CIF vectors, their count, the per-frame weights and the firing frames as outputs, so timestamps
survive; CTC: log-probabilities; ASG: emissions and the transition matrix), for CIF models
decoder_step.onnx (one decoder step over a key/value cache, for greedy and beam search), with
--lm-path (CIF and CTC models) lm_step.onnx (one step of the fusion LM, the same way), for CTC
models with --ngram-lm-path the n-gram LM for prefix beam search, the feature statistics, and
onnx_model.json. Every graph has dynamic batch and time axes: it is traced from a 3 s input and
checked against PyTorch on a longer padded batch before it is written.

Usage: python scripts/export_onnx.py exp/package exp/onnx [--quantize int8] [--opset 17]
           [--lm-path lm/checkpoint_best.pt --lm-weight 0.3]  (CIF, CTC)
           [--ngram-lm-path lm.arpa --lm-weight 0.5 --ctc-token-bonus 1.0]  (CTC)
       python scripts/transcribe.py --model exp/onnx --backend onnxruntime audio.wav
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from cif_plugin.decoding_defaults import DECODING_TAIL_THRESHOLD


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", type=Path, help="a model package (scripts/export_model.py) or a checkpoint")
    parser.add_argument("out_dir", type=Path, help="the ONNX folder to write (replaced if it exists)")
    parser.add_argument(
        "--quantize", choices=["int8"], help="dynamic int8 quantisation of the MatMul/Gemm weights"
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset of the graphs")
    parser.add_argument(
        "--tail-threshold",
        type=float,
        default=DECODING_TAIL_THRESHOLD,
        help="CIF models: the tail firing threshold built into the encoder graph",
    )
    parser.add_argument(
        "--data", type=Path, help="a checkpoint's data folder (default: the one it was trained on)"
    )
    parser.add_argument(
        "--lm-path",
        type=Path,
        help="CIF and CTC models: a fairseq LM over the same dictionary, exported for shallow fusion",
    )
    parser.add_argument(
        "--ngram-lm-path",
        type=Path,
        help="CTC models: an ARPA n-gram LM (read by kenlm), copied into the folder for shallow fusion",
    )
    parser.add_argument(
        "--ctc-token-bonus",
        type=float,
        default=0.0,
        help="CTC models: prefix beam search's score per label",
    )
    parser.add_argument(
        "--lm-weight",
        type=float,
        default=0.0,
        help="weight of the LM log-probabilities in the runtime's searches (default 0: no LM exported)",
    )
    args = parser.parse_args(argv)
    given = (
        (args.model, "package or checkpoint"),
        (args.lm_path, "LM checkpoint"),
        (args.ngram_lm_path, "LM"),
    )
    for path, what in given:
        if path is not None and not path.exists():
            print(f"error: {path}: no such {what}", file=sys.stderr)
            return 2
    from cif_plugin.export.onnx_export import export_onnx

    manifest = export_onnx(
        args.model,
        args.out_dir,
        args.opset,
        args.quantize,
        args.tail_threshold,
        args.data,
        lm_path=args.lm_path,
        lm_weight=args.lm_weight,
        ngram_lm_path=args.ngram_lm_path,
        ctc_token_bonus=args.ctc_token_bonus,
    )
    size = sum(path.stat().st_size for path in args.out_dir.iterdir())
    summary = {"onnx": str(args.out_dir), "bytes": size, "files": sorted(manifest["files"])}
    print(json.dumps({**summary, **{key: manifest[key] for key in ("family", "opset", "quantized")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

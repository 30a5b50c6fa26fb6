"""Export a trained checkpoint as a self-contained model package (cif_plugin/inference/packages.py).

The package holds the weights without optimizer state, the dictionary, the data config (feature
size, CMVN and the other transforms the model was trained with), and model.json (family, sample
rate, frame shift, vocabulary size, source checkpoint, creation time, SHA-256 of every file).
``Recognizer.from_pretrained(OUT_DIR)`` then needs no training data folder.

Usage: python scripts/export_model.py exp/avg.pt exp/package [--dtype float16] [--data data]
"""

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from cif_plugin.inference import export_package


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "checkpoint",
        type=Path,
        help="a checkpoint of s2t_cif_transformer, s2t_ctc_conformer or s2t_asg_conformer",
    )
    parser.add_argument("out_dir", type=Path, help="the package folder to write (replaced if it exists)")
    parser.add_argument("--dtype", choices=["float32", "float16"], default="float32", help="weight precision")
    parser.add_argument("--data", type=Path, help="the training data folder (default: the checkpoint's)")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        print(f"error: {args.checkpoint}: no such checkpoint", file=sys.stderr)
        return 2
    manifest = export_package(args.checkpoint, args.out_dir, args.dtype, args.data)
    size = sum(p.stat().st_size for p in args.out_dir.iterdir())
    print(
        json.dumps(
            {
                "package": str(args.out_dir),
                "bytes": size,
                **{k: manifest[k] for k in ("family", "arch", "dtype")},
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

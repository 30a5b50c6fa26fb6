"""Average the parameters of the last N epoch (or update) checkpoints of a fairseq run.

fairseq-fixed does not ship fairseq's ``scripts/average_checkpoints.py``; this one does the same
(the paper averages the last 10 epoch checkpoints) and loads checkpoints with torch's
weights-only unpickling (the plugin allow-lists what fairseq checkpoints hold). The output keeps
every other entry (config, optimizer history) of the newest checkpoint, as stored, and is written
atomically.

Usage: python scripts/average_checkpoints.py --inputs exp/cif --num-epoch-checkpoints 10 \\
           --output exp/cif/avg_last_10_checkpoint.pt
"""

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional

import torch

import cif_plugin  # noqa: F401  (registers the models; allow-lists the checkpoint classes)

__all__ = ["average_state_dicts", "last_checkpoints"]


def last_checkpoints(folder: Path, count: int, by_update: bool) -> List[Path]:
    """The ``count`` newest ``checkpoint<epoch>.pt`` (or ``checkpoint_<epoch>_<update>.pt``) files."""
    pattern = re.compile(r"checkpoint_\d+_(\d+)\.pt$" if by_update else r"checkpoint(\d+)\.pt$")
    numbered = sorted(
        (int(match.group(1)), path) for path in folder.iterdir() if (match := pattern.fullmatch(path.name))
    )
    if len(numbered) < count:
        kind = "update" if by_update else "epoch"
        raise FileNotFoundError(f"{folder} has {len(numbered)} {kind} checkpoints, {count} are needed")
    return [path for _, path in numbered[-count:]]


def average_state_dicts(state_dicts: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """Element-wise mean (in float64, cast back) of parameters with identical names and shapes."""
    names = list(state_dicts[0])
    for index, state in enumerate(state_dicts[1:], start=1):
        if list(state) != names:
            raise ValueError(f"checkpoint {index} has other parameters than checkpoint 0")
    averaged = {}
    for name in names:
        tensors = [state[name] for state in state_dicts]
        if tensors[0].is_floating_point():
            averaged[name] = (sum(t.double() for t in tensors) / len(tensors)).to(tensors[0].dtype)
        else:
            averaged[name] = tensors[-1]  # integer buffers (e.g. BatchNorm counters): the newest
    return averaged


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--inputs", type=Path, nargs="+", required=True, help="a checkpoint folder, or checkpoints"
    )
    parser.add_argument("--num-epoch-checkpoints", type=int, help="average the last N epoch checkpoints")
    parser.add_argument("--num-update-checkpoints", type=int, help="average the last N update checkpoints")
    parser.add_argument("--output", type=Path, required=True, help="the averaged checkpoint to write")
    args = parser.parse_args(argv)
    if args.num_epoch_checkpoints and args.num_update_checkpoints:
        parser.error("give one of --num-epoch-checkpoints and --num-update-checkpoints")
    count = args.num_epoch_checkpoints or args.num_update_checkpoints
    if count:
        if len(args.inputs) != 1 or not args.inputs[0].is_dir():
            parser.error("with --num-*-checkpoints, --inputs is one checkpoint folder")
        paths = last_checkpoints(args.inputs[0], count, by_update=bool(args.num_update_checkpoints))
    else:
        paths = args.inputs
    # Raw states, not fairseq's load_checkpoint_to_cpu: that one turns the stored config into an
    # OmegaConf object, which a weights-only load of the averaged checkpoint would then refuse.
    states = [torch.load(path, map_location="cpu", weights_only=True) for path in paths]
    newest = states[-1]
    newest["model"] = average_state_dicts([state["model"] for state in states])
    temporary = args.output.with_name(args.output.name + ".tmp")
    torch.save(newest, temporary)
    os.replace(temporary, args.output)
    print(f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}) -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

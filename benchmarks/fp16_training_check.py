"""Train the paper architecture in fp16 on synthetic data and check that it learns without endless
loss-scale overflows.

Runs ``fairseq-train`` (through ``torchrun`` with ``--nproc N`` > 1) on a learnable synthetic corpus
(tests/speech_data.py: 10 characters, ~1 s utterances) with ``--arch s2t_cif_transformer --fp16``,
logs every 25 updates as JSON, and prints the first and last training loss, the final loss scale,
the number of fp16 overflows and the seconds per update. Exits 1 unless the loss fell by at least a
third, the overflows stayed under 10% of the updates, and the run reached ``--updates``.

Usage: python benchmarks/fp16_training_check.py [--updates 300] [--nproc 1] [--precision fp16|bf16]
(a CPU smoke run of the script itself: --cpu --precision fp32 --arch s2t_cif_transformer_tiny)
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from fairseq_setup import fairseq_cli  # noqa: E402
from speech_data import write_dataset  # noqa: E402


def train_command(data: Path, save_dir: Path, args) -> list:
    command = fairseq_cli("train", data, "--train-subset", "train", "--valid-subset", "dev")
    command += ["--arch", args.arch, "--criterion", "cif"]
    command += [] if args.precision == "fp32" else [f"--{args.precision}"]
    command += ["--cpu"] if args.cpu else []
    command += [
        "--optimizer",
        "adam",
        "--lr",
        "5e-4",
        "--lr-scheduler",
        "inverse_sqrt",
        "--warmup-updates",
        "50",
    ]
    command += ["--clip-norm", "5.0", "--max-tokens", str(args.max_tokens), "--max-update", str(args.updates)]
    command += ["--log-format", "json", "--log-interval", "25", "--no-progress-bar", "--disable-validation"]
    command += ["--save-dir", str(save_dir), "--no-save", "--num-workers", "2"]
    if args.nproc > 1:  # torchrun -m fairseq_cli.train ...
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={args.nproc}",
        ]
        command = launcher + command[1:]
    return command


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=300, help="training updates")
    parser.add_argument("--nproc", type=int, default=1, help="processes (GPUs) through torchrun")
    parser.add_argument("--precision", choices=["fp16", "bf16", "fp32"], default="fp16", help="precision")
    parser.add_argument("--arch", default="s2t_cif_transformer", help="architecture (a smoke run: *_tiny)")
    parser.add_argument("--cpu", action="store_true", help="train on the CPU (with --precision fp32)")
    parser.add_argument("--max-tokens", type=int, default=20000, help="input frames per batch and GPU")
    parser.add_argument("--utterances", type=int, default=600, help="synthetic training utterances")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = write_dataset(Path(tmp) / "data", {"train": args.utterances, "dev": 20})
        start = time.perf_counter()
        result = subprocess.run(train_command(data, Path(tmp) / "save", args), capture_output=True, text=True)
        seconds = time.perf_counter() - start
    log = result.stdout + result.stderr
    records, reached = [], 0  # train_inner records: loss every 25 updates; epoch records: train_*
    for line in log.splitlines():
        try:
            record = json.loads(line[line.index("{") :])
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        reached = max(reached, int(record.get("num_updates", record.get("train_num_updates", 0))))
        if "loss" in record and "num_updates" in record:
            records.append(record)
    overflows = log.count("gradient overflow detected")
    world = f"{args.nproc} process(es)"
    if result.returncode != 0 or not records:
        print(f"{args.precision} run on {world} failed (exit {result.returncode}):\n{log[-4000:]}")
        return 1
    first, last = float(records[0]["loss"]), float(records[-1]["loss"])
    scale = records[-1].get("loss_scale", "n/a")
    print(
        f"{args.precision} {args.arch} on {world}: {reached} updates in {seconds:.0f} s"
        f" ({seconds / max(reached, 1):.3f} s/update incl. start-up); loss {first:.3f} -> {last:.3f};"
        f" final loss scale {scale}; {overflows} overflow(s)"
    )
    failures = []
    if last > first * 2 / 3:
        failures.append("the loss did not fall by a third")
    if overflows > 0.1 * args.updates:
        failures.append(f"{overflows} overflows in {args.updates} updates")
    if reached < args.updates:
        failures.append(f"stopped at update {reached}")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

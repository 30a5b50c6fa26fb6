"""Forward+backward time of our ASG operator against the pure-PyTorch one and torch's built-in CTC.

Same shapes for all three (T=200, B=16, C in {30, 100}, 40 labels per target, full lengths), in
this process: our native op (C++ on the CPU, CUDA on a GPU), the autograd reference
(``implementation="python"``), and ``torch.nn.functional.ctc_loss`` on log-probabilities (the
log-softmax is not timed: ASG takes unnormalised scores). Prints milliseconds (median of
``--repeats``) and the ratios; exits 1 if a CPU target is missed:

- ours at most 3x the time of the built-in CTC loss at C=30;
- ours at least 10x faster than the pure-PyTorch op.

Usage: python benchmarks/bench_asg.py [--labels 30 100] [--repeats 5] [--threads N]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cif_plugin.ops.asg import asg_loss  # noqa: E402

FRAMES, BATCH, TARGET_LABELS = 200, 16, 40
CTC_RATIO_TARGET, CTC_TARGET_LABELS, PYTHON_SPEEDUP_TARGET = 3.0, 30, 10.0


def make_inputs(labels: int, device: str) -> Dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(labels)
    return {
        "emissions": torch.randn(BATCH, FRAMES, labels, generator=generator).to(device),
        "transitions": (torch.randn(labels, labels, generator=generator) * 0.1).to(device),
        "targets": torch.randint(1, labels, (BATCH, TARGET_LABELS), generator=generator).to(device),
        "input_lengths": torch.full((BATCH,), FRAMES, device=device),
        "target_lengths": torch.full((BATCH,), TARGET_LABELS, device=device),
    }


def asg_step(inputs, implementation: str) -> Callable[[], None]:
    def step():
        emissions = inputs["emissions"].detach().requires_grad_()
        transitions = inputs["transitions"].detach().requires_grad_()
        loss = asg_loss(
            emissions, transitions, inputs["targets"], inputs["input_lengths"], inputs["target_lengths"],
            reduction="sum", implementation=implementation,
        )  # fmt: skip
        loss.backward()

    return step


def ctc_step(inputs) -> Callable[[], None]:
    log_probs = torch.log_softmax(inputs["emissions"], dim=-1).transpose(0, 1).contiguous()  # (T, B, C)

    def step():
        leaf = log_probs.detach().requires_grad_()
        loss = torch.nn.functional.ctc_loss(
            leaf,
            inputs["targets"],
            inputs["input_lengths"],
            inputs["target_lengths"],
            blank=0,
            reduction="sum",
        )
        loss.backward()

    return step


def median_ms(step: Callable[[], None], repeats: int, device: str) -> float:
    step()  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--labels", type=int, nargs="+", default=[30, 100], help="label set sizes C")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"ASG forward+backward, T={FRAMES}, B={BATCH}, {TARGET_LABELS} labels per target, "
          f"{torch.get_num_threads()} CPU threads")  # fmt: skip
    columns = ("device", "C", "ours ms", "python ms", "ctc ms", "ours/ctc", "python/ours")
    print(" ".join(f"{name:>{width}}" for name, width in zip(columns, (6, 4, 9, 10, 8, 9, 12), strict=True)))
    failures = []
    for device in devices:
        for labels in args.labels:
            inputs = make_inputs(labels, device)
            ours = median_ms(asg_step(inputs, "native"), args.repeats, device)
            python = median_ms(asg_step(inputs, "python"), max(1, args.repeats // 2), device)
            ctc = median_ms(ctc_step(inputs), args.repeats, device)
            ratios = f"{ours / ctc:8.2f}x {python / ours:11.1f}x"
            print(f"{device:>6} {labels:>4} {ours:9.2f} {python:10.2f} {ctc:8.2f} {ratios}")
            if device == "cpu":
                if labels == CTC_TARGET_LABELS and ours > CTC_RATIO_TARGET * ctc:
                    target = f"target <= {CTC_RATIO_TARGET}x"
                    failures.append(f"C={labels}: ours is {ours / ctc:.2f}x the built-in CTC ({target})")
                if python < PYTHON_SPEEDUP_TARGET * ours:
                    failures.append(f"C={labels}: only {python / ours:.1f}x faster than the pure-PyTorch op")
    print("\n".join(["Targets missed:", *failures]) if failures else "All CPU targets met")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

"""Forward+backward time of our loop-free CIF against the sequential reference and torch-cif.

All three run in this process on the same inputs, training-style (weights scaled to the target
lengths): B=32, C=256, T in {64, 128, 512}, ragged lengths, on the CPU and on CUDA when present.
Prints milliseconds per call and the ratios; exits 1 if a target is missed:

- at least 10x faster than the sequential reference at T=128;
- no slower than torch-cif (``pip install torch-cif``, a benchmark-only dependency) at every size.

Usage: python benchmarks/bench_cif.py [--sizes 64 128 512] [--repeats 5] [--threads N]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from cif_plugin.modules import integrate_and_fire, scale_to_target_lengths  # noqa: E402

from cif_reference import sequential_cif  # noqa: E402

try:
    from torch_cif import cif_function as torch_cif_function
except ImportError:  # reported in the output; the comparison is then skipped
    torch_cif_function = None

BATCH, CHANNELS, TOKENS_PER_FRAME = 32, 256, 0.3
SEQUENTIAL_TARGET_SPEEDUP, SEQUENTIAL_TARGET_SIZE = 10.0, 128


def make_inputs(num_frames: int, device: str, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Ragged batch: lengths in [T/2, T], sigmoid-like weights, ~0.3 tokens per frame."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(num_frames // 2, num_frames + 1, (BATCH,), generator=generator)
    lengths[0] = num_frames
    hidden = torch.randn(BATCH, num_frames, CHANNELS, generator=generator)
    alpha = torch.rand(BATCH, num_frames, generator=generator) * 0.6
    target_lengths = (lengths.float() * TOKENS_PER_FRAME).round().long().clamp(min=1)
    padding_mask = torch.arange(num_frames) >= lengths.unsqueeze(1)
    tensors = dict(
        hidden=hidden, alpha=alpha, padding_mask=padding_mask, lengths=lengths, target_lengths=target_lengths
    )
    return {name: tensor.to(device) for name, tensor in tensors.items()}


def ours(inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
    alpha = scale_to_target_lengths(
        inputs["alpha"].masked_fill(inputs["padding_mask"], 0.0), inputs["target_lengths"]
    )
    return integrate_and_fire(inputs["hidden"], alpha, inputs["padding_mask"], threshold=0.99).cif_out


def sequential(inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
    alpha = scale_to_target_lengths(
        inputs["alpha"].masked_fill(inputs["padding_mask"], 0.0), inputs["target_lengths"]
    )
    tokens, _ = sequential_cif(inputs["hidden"], alpha, inputs["lengths"], threshold=0.99)
    return torch.cat(tokens)


def torch_cif(inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
    return torch_cif_function(
        inputs["hidden"],
        inputs["alpha"],
        beta=1.0,
        padding_mask=inputs["padding_mask"],
        target_lengths=inputs["target_lengths"],
    )["cif_out"][0]


def time_forward_backward(fn: Callable, inputs: Dict[str, torch.Tensor], repeats: int, warmup: int) -> float:
    """Median milliseconds of fn(inputs) followed by a backward pass to hidden and alpha."""
    device = inputs["hidden"].device
    times: List[float] = []
    for step in range(warmup + repeats):
        leaf_inputs = dict(inputs)
        leaf_inputs["hidden"] = inputs["hidden"].detach().requires_grad_(True)
        leaf_inputs["alpha"] = inputs["alpha"].detach().requires_grad_(True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn(leaf_inputs).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warmup:
            times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def run_device(device: str, sizes: List[int], repeats: int) -> List[str]:
    """Print one table for a device; return the missed targets."""
    missed = []
    print(f"\n{device}: B={BATCH} C={CHANNELS}, forward+backward, median ms (ratios: other / ours)")
    header = (
        ("T", 5),
        ("ours", 9),
        ("torch-cif", 10),
        ("sequential", 11),
        ("vs torch-cif", 13),
        ("vs sequential", 14),
    )
    print(" ".join(f"{name:>{width}}" for name, width in header))
    for num_frames in sizes:
        inputs = make_inputs(num_frames, device)
        ours_ms = time_forward_backward(ours, inputs, repeats, warmup=2)
        cif_ms: Optional[float] = None
        if torch_cif_function is not None:
            cif_ms = time_forward_backward(torch_cif, inputs, repeats, warmup=2)
        seq_ms = time_forward_backward(sequential, inputs, repeats=1, warmup=0)
        cif_text = f"{cif_ms:10.2f}" if cif_ms is not None else f"{'n/a':>10}"
        cif_ratio = f"{cif_ms / ours_ms:12.2f}x" if cif_ms is not None else f"{'n/a':>13}"
        print(
            f"{num_frames:>5} {ours_ms:9.2f} {cif_text} {seq_ms:11.1f} {cif_ratio} {seq_ms / ours_ms:13.1f}x"
        )
        if cif_ms is not None and ours_ms > cif_ms:
            missed.append(f"{device} T={num_frames}: slower than torch-cif ({ours_ms:.2f} > {cif_ms:.2f} ms)")
        if num_frames == SEQUENTIAL_TARGET_SIZE and seq_ms / ours_ms < SEQUENTIAL_TARGET_SPEEDUP:
            missed.append(
                f"{device} T={num_frames}: only {seq_ms / ours_ms:.1f}x faster than the sequential reference"
            )
    return missed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 512], help="frame counts T to time")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per size (median reported)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--devices", nargs="+", default=None, help="devices to run (default: cpu, and cuda if present)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    if torch_cif_function is None:
        print("torch-cif is not installed (pip install torch-cif): that comparison is skipped")
    missed = [miss for device in devices for miss in run_device(device, args.sizes, args.repeats)]
    print()
    for miss in missed:
        print(f"TARGET MISSED: {miss}")
    if not missed:
        print(
            "All targets met: >= 10x faster than sequential at T=128, no slower than torch-cif at every size."
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())

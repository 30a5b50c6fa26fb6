"""Training throughput and peak memory of the CIF model through fairseq's own Trainer.

For each architecture (paper and tiny) and each precision (fp32 on the CPU; fp32, --fp16 and
--bf16 on CUDA when present) it runs N updates of the ``cif`` criterion (CE + 0.5 CTC +
quantity, label smoothing) on AISHELL-1-shaped random batches (utterances of 3-7 s, one character
per ~32 frames, the 4,234-symbol dictionary, ``--max-tokens`` frames per batch) and prints updates/s,
target tokens/s, input frames/s, peak memory, and the ratio of tokens/s to the published run
(about 4,000 target tokens/s on 2 x A100 with fp16, from the published training log). Batches hold
the paper's 30,000 frames on CUDA; on the CPU 6,000 (a paper-arch update at 30,000 frames needs ~19 GB there).

Usage: python benchmarks/bench_train.py [--updates 5] [--archs ...] [--cpu-max-tokens 6000]
"""

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from fairseq.trainer import Trainer  # noqa: E402

from fairseq_setup import build_from_command_line  # noqa: E402
from speech_data import write_aishell_sized_data_dir  # noqa: E402

PUBLISHED_TOKENS_PER_SECOND = 4000.0  # 2 x A100, fp16, the paper's baseline log
FRAMES_PER_CHARACTER = 32
ARCHS = ("s2t_cif_transformer", "s2t_cif_transformer_tiny")


def make_batches(task, max_tokens: int, count: int, seed: int = 0) -> List[Dict]:
    """Collated batches of random features and targets shaped like AISHELL-1 utterances."""
    dictionary, generator = task.target_dictionary, torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        lengths = []
        while sum(lengths) + 700 <= max_tokens:
            lengths.append(int(torch.randint(300, 701, (), generator=generator)))
        lengths.sort(reverse=True)
        frames = torch.zeros(len(lengths), lengths[0], 80)
        for i, length in enumerate(lengths):
            frames[i, :length] = torch.randn(length, 80, generator=generator)
        chars = [max(1, n // FRAMES_PER_CHARACTER) for n in lengths]
        target = torch.full((len(lengths), max(chars) + 1), dictionary.pad())
        prev_output_tokens = target.clone()
        for i, n in enumerate(chars):
            tokens = torch.randint(dictionary.nspecial, len(dictionary), (n,), generator=generator)
            target[i, : n + 1] = torch.cat([tokens, torch.tensor([dictionary.eos()])])
            prev_output_tokens[i, : n + 1] = torch.cat([torch.tensor([dictionary.eos()]), tokens])
        target_lengths = torch.tensor(chars) + 1
        batches.append(
            {
                "id": torch.arange(len(lengths)),
                "net_input": {
                    "src_tokens": frames,
                    "src_lengths": torch.tensor(lengths),
                    "prev_output_tokens": prev_output_tokens,
                },
                "target": target,
                "target_lengths": target_lengths,
                "ntokens": int(target_lengths.sum()),
                "nsentences": len(lengths),
            }
        )
    return batches


def run(data_dir: Path, arch: str, precision: str, device: str, max_tokens: int, args) -> Dict[str, float]:
    extra = ["--optimizer", "adam", "--lr", "3e-4", "--clip-norm", "1.0", "--ctc-loss-lambda", "0.5"]
    extra += ["--apply-label-smoothing", "--max-tokens", str(max_tokens), "--seed", "1"]
    extra += ["--cpu"] if device == "cpu" else []
    extra += {"fp32": [], "fp16": ["--fp16"], "bf16": ["--bf16"]}[precision]
    cfg, task, model, criterion = build_from_command_line(data_dir, arch, extra)
    trainer = Trainer(cfg, task, model, criterion)
    batches = make_batches(task, max_tokens, args.updates + args.warmup)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for batch in batches[: args.warmup]:
        trainer.train_step([batch])
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in batches[args.warmup :]:
        trainer.train_step([batch])
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    timed = batches[args.warmup :]
    peak_gb = (
        torch.cuda.max_memory_allocated() / 2**30
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "updates_per_s": len(timed) / seconds,
        "tokens_per_s": sum(b["ntokens"] for b in timed) / seconds,
        "frames_per_s": sum(int(b["net_input"]["src_lengths"].sum()) for b in timed) / seconds,
        "peak_gb": peak_gb,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--updates", type=int, default=5, help="timed updates per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates first")
    parser.add_argument(
        "--max-tokens", type=int, default=30000, help="input frames per CUDA batch (paper: 30000)"
    )
    parser.add_argument("--cpu-max-tokens", type=int, default=6000, help="input frames per CPU batch")
    parser.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS, help="architectures to run")
    parser.add_argument(
        "--devices", nargs="+", default=None, help="cpu and/or cuda (default: cpu, cuda if present)"
    )
    args = parser.parse_args()
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    print("peak memory: CUDA max allocated on GPU; process max RSS on the CPU (includes everything loaded)")
    header = f"{'arch':<26} {'device':<6} {'prec':<5} {'frames':>6} {'params':>11} {'upd/s':>7} {'tok/s':>9}"
    print(header + f" {'frames/s':>10} {'peak GB':>8} {'tok/s vs paper':>15}")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = write_aishell_sized_data_dir(Path(tmp))
        for device in devices:
            max_tokens = args.cpu_max_tokens if device == "cpu" else args.max_tokens
            for arch in args.archs:
                for precision in ["fp32"] if device == "cpu" else ["fp32", "fp16", "bf16"]:
                    r = run(data_dir, arch, precision, device, max_tokens, args)
                    print(
                        f"{arch:<26} {device:<6} {precision:<5} {max_tokens:>6} {r['params']:>11,} "
                        f"{r['updates_per_s']:>7.2f} "
                        f"{r['tokens_per_s']:>9.0f} {r['frames_per_s']:>10.0f} {r['peak_gb']:>8.2f} "
                        f"{r['tokens_per_s'] / PUBLISHED_TOKENS_PER_SECOND:>14.2f}x",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

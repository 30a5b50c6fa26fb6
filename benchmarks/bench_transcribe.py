"""Batched transcription against one file at a time, in one run, at identical outputs.

200 audio files of 2-10 s (noise: the models have random weights, which is fine for speed), the
tiny and the paper-size CIF model (AISHELL-1-sized dictionary), greedy decoding, 2 CPU threads.
Prints each mode's real-time factor (decoding seconds / audio seconds) and the batched speed-up;
target for the tiny model: >= 3x (per-call overhead dominates there). Then the peak RSS of
transcribing a long recording (``--long-minutes``, default 60) through the VAD path.

Usage: .venv/bin/python benchmarks/bench_transcribe.py [--files 200] [--skip-paper] [--long-minutes 60]
"""

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from cif_plugin.generation import DecodingOptions  # noqa: E402
from cif_plugin.inference import Recognizer  # noqa: E402

from fairseq_setup import build_from_command_line  # noqa: E402
from speech_data import write_aishell_sized_data_dir  # noqa: E402

TINY_TARGET = 3.0


def _files(folder: Path, count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    paths, seconds = [], 0.0
    for index in range(count):
        duration = rng.uniform(2.0, 10.0)
        path = folder / f"f{index:03d}.wav"
        soundfile.write(str(path), 0.1 * rng.normal(size=int(duration * 16000)), 16000, subtype="PCM_16")
        paths.append(path)
        seconds += duration
    return paths, seconds


def _recognizer(data: Path, arch: str) -> Recognizer:
    torch.manual_seed(0)
    _, task, model, _ = build_from_command_line(data, arch)
    return Recognizer(model.eval(), task, DecodingOptions(beam=1, data_dir=str(data)))


def _timed(function):
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def _outputs(transcripts):
    return [(t.text, [(x.start, x.end) for x in t.tokens]) for t in transcripts]


def compare(recognizer: Recognizer, paths, audio_seconds: float, name: str) -> float:
    recognizer.transcribe(paths[:4], batch_size=4)  # warm-up
    single, single_time = _timed(lambda: [recognizer.transcribe([p], batch_size=1)[0] for p in paths])
    batched, batched_time = _timed(lambda: recognizer.transcribe(paths, batch_size=16))
    if _outputs(single) != _outputs(batched):
        raise SystemExit(f"{name}: batched outputs differ from one-at-a-time outputs")
    ratio = single_time / batched_time
    print(
        f"{name:>6}  one at a time RTF {single_time / audio_seconds:.4f}  batched (16) RTF "
        f"{batched_time / audio_seconds:.4f}  speed-up {ratio:.2f}x  (identical outputs)"
    )
    return ratio


def long_recording_rss(minutes: float, arch: str, data: Path) -> None:
    """Peak RSS of a child process transcribing a ``minutes``-long recording (speech-like bursts)."""
    code = f"""
import sys
sys.path.insert(0, {str(REPO_ROOT / "tests")!r})
from bench_transcribe import _recognizer
from pathlib import Path
recognizer = _recognizer(Path({str(data)!r}), {arch!r})
result = recognizer.transcribe([{str(data / "long.wav")!r}])[0]
# VmHWM: this process's own peak (ru_maxrss would start from the parent's at fork)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(len(result.tokens), peak / 1024)
"""
    path = data / "long.wav"
    if not path.exists():
        rng = np.random.default_rng(1)
        with soundfile.SoundFile(str(path), "w", 16000, 1, subtype="PCM_16") as handle:
            for _ in range(int(minutes * 60 / 5)):  # 3 s of voiced bursts, 2 s of silence
                t = np.arange(48000) / 16000
                voiced = 0.3 * np.sin(2 * np.pi * 150 * t) * (1 + np.sin(2 * np.pi * 4 * t)) / 2
                handle.write(np.concatenate([voiced + 0.01 * rng.normal(size=t.size), np.zeros(32000)]))
    env = {"PYTHONPATH": str(REPO_ROOT / "benchmarks"), "OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT
    )
    if result.returncode:
        raise SystemExit(result.stderr[-2000:])
    tokens, rss = result.stdout.split()[-2:]
    print(
        f"{arch}: {minutes:g} min recording through the VAD path, {tokens} tokens, "
        f"peak RSS {float(rss):.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=200, help="number of audio files")
    parser.add_argument("--skip-paper", action="store_true", help="only the tiny model")
    parser.add_argument(
        "--long-minutes", type=float, default=60.0, help="long recording for peak RSS (0: skip)"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        data = write_aishell_sized_data_dir(folder / "data")
        paths, seconds = _files(folder, args.files)
        print(f"{args.files} files, {seconds:.0f} s of audio, 2 threads, greedy")
        tiny = compare(_recognizer(data, "s2t_cif_transformer_tiny"), paths, seconds, "tiny")
        if not args.skip_paper:
            compare(_recognizer(data, "s2t_cif_transformer"), paths, seconds, "paper")
        if args.long_minutes > 0:
            long_recording_rss(args.long_minutes, "s2t_cif_transformer_tiny", data)
            if not args.skip_paper:
                long_recording_rss(args.long_minutes, "s2t_cif_transformer", data)
        print(
            f"tiny batched speed-up {tiny:.2f}x: "
            + ("target met" if tiny >= TINY_TARGET else "TARGET MISSED")
        )
        print(f"peak RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()

"""Real-time factor of CIF decoding: greedy, beam 10, and beam 10 with LM shallow fusion.

The paper's model (``s2t_cif_transformer``, 4,234-symbol vocabulary) with random weights decodes
AISHELL-1-shaped random audio: 16 utterances of 3-6 s. Its CIF weight predictor is set to a constant
0.28 per 80 ms frame (about 3.5 characters per second, AISHELL-1's rate), so every utterance decodes
as many steps as a real one would. The LM is a random 4-layer 512-d fairseq transformer LM over the
same vocabulary. RTF = decoding time / audio duration (encoder included, features excluded), at batch
1 and batch 16, on the CPU (one thread by default: "one CPU core") and on CUDA when present.

Usage: python benchmarks/bench_decode.py [--utterances 16] [--threads 1] [--devices cpu cuda]
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

from fairseq.models.transformer_lm import TransformerLanguageModel, TransformerLanguageModelConfig  # noqa: E402

from cif_plugin.generation import CifGenerator  # noqa: E402

from fairseq_setup import build_from_command_line  # noqa: E402
from speech_data import write_aishell_sized_data_dir  # noqa: E402

FRAME_SECONDS = 0.01
CHARACTER_WEIGHT = 0.28  # CIF weight per 80 ms encoder frame: ~3.5 characters per second


def random_language_model(dictionary) -> TransformerLanguageModel:
    config = TransformerLanguageModelConfig(
        decoder_layers=4, decoder_embed_dim=512, decoder_ffn_embed_dim=2048, decoder_attention_heads=8
    )
    config.max_target_positions = 1024  # otherwise an unresolved ${task...} interpolation
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    return TransformerLanguageModel.build_model(config, task).eval()


def make_batches(count: int, batch_size: int, device: str, seed: int = 0) -> List[Dict]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(300, 601, (count,), generator=generator).tolist()
    batches = []
    for start in range(0, count, batch_size):
        chunk = sorted(lengths[start : start + batch_size], reverse=True)
        features = torch.zeros(len(chunk), chunk[0], 80)
        for i, n in enumerate(chunk):
            features[i, :n] = torch.randn(n, 80, generator=generator)
        batches.append(
            {
                "net_input": {
                    "src_tokens": features.to(device),
                    "src_lengths": torch.tensor(chunk, device=device),
                }
            }
        )
    return batches


def real_time_factor(generator: CifGenerator, model, batches: List[Dict]) -> float:
    audio_seconds = sum(float(b["net_input"]["src_lengths"].sum()) * FRAME_SECONDS for b in batches)
    generator.generate([model], batches[0])  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for batch in batches:
        generator.generate([model], batch)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / audio_seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=16, help="utterances decoded per configuration")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: one core)")
    parser.add_argument(
        "--devices", nargs="+", default=None, help="cpu and/or cuda (default: cpu, cuda if present)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    with tempfile.TemporaryDirectory() as tmp:
        _, task, model, _ = build_from_command_line(
            write_aishell_sized_data_dir(Path(tmp)), "s2t_cif_transformer"
        )
    with torch.no_grad():
        predictor = model.cif.weight_predictor.output_proj
        predictor.weight.zero_()
        predictor.bias.fill_(torch.logit(torch.tensor(CHARACTER_WEIGHT)).item())
    dictionary = task.target_dictionary
    lm = random_language_model(dictionary)
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, CPU threads {threads}, {args.utterances} utterances of 3-6 s")
    print(f"{'device':<6} {'batch':>5} {'mode':<16} {'RTF':>8} {'x real time':>12}")
    for device in devices:
        model.to(device).eval()
        lm.to(device)
        for batch_size in (1, 16):
            batches = make_batches(args.utterances, batch_size, device)
            for name, beam, use_lm in (
                ("greedy", 1, False),
                ("beam 10", 10, False),
                ("beam 10 + LM 0.3", 10, True),
            ):
                generator = CifGenerator(
                    model, dictionary, beam=beam, lm=lm if use_lm else None, lm_weight=0.3
                )
                rtf = real_time_factor(generator, model, batches)
                print(f"{device:<6} {batch_size:>5} {name:<16} {rtf:>8.4f} {1 / rtf:>11.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

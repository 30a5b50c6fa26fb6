"""Real-time factor of CIF decoding, side by side with FunASR's Paraformer, then per search mode.

Side by side (CPU, batch 1): the same 16 random fbank inputs of 3-6 s go through Paraformer (built
from FunASR's AISHELL-1 recipe with random weights by paraformer_peer.py, its predictor set to the
same token rate as ours) and through our model, each timed over all inputs in every pass, the
systems taking turns within a pass; the table gives the median of ``--passes`` passes after a
warm-up, the ratios to Paraformer, and where our time goes (encoder, CIF, decoder per step).
Paraformer comes from ``make bench-peers``; without it that table is skipped with a note.

Per search mode: the paper's model (``s2t_cif_transformer``, 4,234-symbol vocabulary) with random
weights decodes AISHELL-1-shaped random audio: 16 utterances of 3-6 s. Its CIF weight predictor is
set to a constant 0.28 per 80 ms frame (about 3.5 characters per second, AISHELL-1's rate), so
every utterance decodes as many steps as a real one would. The LM is a random 4-layer 512-d
fairseq transformer LM over the same vocabulary. RTF = decoding time / audio duration (encoder
included, features excluded), at batch 1 and batch 16, on the CPU (one thread by default: "one
CPU core") and on CUDA when present.

Usage: python benchmarks/bench_decode.py [--utterances 16] [--threads 1] [--passes 10]
       [--devices cpu cuda] [--side-by-side-only]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, List

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests"))

import paraformer_peer  # noqa: E402
from fairseq.models.transformer_lm import TransformerLanguageModel, TransformerLanguageModelConfig  # noqa: E402

from cif_plugin.generation import CifGenerator  # noqa: E402

from fairseq_setup import build_from_command_line  # noqa: E402
from speech_data import write_aishell_sized_data_dir  # noqa: E402

FRAME_SECONDS = 0.01
CHARACTER_WEIGHT = 0.28  # CIF weight per 80 ms encoder frame: ~3.5 characters per second
TOKENS_PER_SECOND = CHARACTER_WEIGHT / 0.08
TARGETS = {"greedy": 1.0, "beam 10": 1.15, "encoder": 1.10}  # at most this x Paraformer's RTF


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


def _median_pass_times(systems: Dict, passes: int) -> Dict[str, float]:
    """Median over ``passes`` of each system's time for all inputs; systems take turns in a pass."""
    for run in systems.values():
        run()  # warm-up
    times: Dict[str, List[float]] = {name: [] for name in systems}
    for _ in range(passes):
        for name, run in systems.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def side_by_side(model, dictionary, batches: List[Dict], passes: int) -> None:
    """Paraformer against our model on the same inputs, batch 1, CPU (see the module docstring)."""
    problem = paraformer_peer.import_error()
    if problem is not None:
        print(f"side by side with Paraformer skipped: {problem}")
        return
    paraformer = paraformer_peer.Paraformer(len(dictionary), TOKENS_PER_SECOND)
    inputs = [(b["net_input"]["src_tokens"], b["net_input"]["src_lengths"]) for b in batches]
    audio_seconds = sum(float(lengths.sum()) * FRAME_SECONDS for _, lengths in inputs)
    greedy, beam = CifGenerator(model, dictionary, beam=1), CifGenerator(model, dictionary, beam=10)
    with torch.no_grad():
        threshold = greedy.tail_threshold
        cifs = [model.forward_cif(model.forward_encoder(x, n), tail_threshold=threshold) for x, n in inputs]
    our_tokens = sum(int(c["fire_counts"].sum()) for c in cifs)
    their_tokens = sum(paraformer.recognise(x) for x, _ in inputs)

    def over_inputs(function):
        return lambda: [function(x, n) for x, n in inputs]

    @torch.no_grad()
    def encode_and_fire(x, n):
        model.forward_cif(model.forward_encoder(x, n), tail_threshold=greedy.tail_threshold)

    systems = {
        "paraformer encoder": over_inputs(lambda x, n: paraformer.encode(x)),
        "paraformer": over_inputs(lambda x, n: paraformer.recognise(x)),
        "encoder": over_inputs(torch.no_grad()(lambda x, n: model.forward_encoder(x, n))),
        "encoder + CIF": over_inputs(encode_and_fire),
        "greedy": lambda: [greedy.generate([model], b) for b in batches],
        "beam 10": lambda: [beam.generate([model], b) for b in batches],
    }
    seconds = _median_pass_times(systems, passes)
    rtf = {name: value / audio_seconds for name, value in seconds.items()}
    active = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("ctc_proj"))
    encoder_parameters = sum(p.numel() for p in model.encoder.parameters())
    print(
        f"\nside by side, batch 1, CPU, {torch.get_num_threads()} thread(s), {len(inputs)} utterances "
        f"({audio_seconds:.1f} s), median of {passes} passes; tokens decoded: ours {our_tokens}, "
        f"Paraformer {their_tokens}"
    )
    print(f"{'system':<12} {'what is timed':<22} {'parameters':>11} {'RTF':>8} {'x Paraformer':>13}")
    rows = [
        ("Paraformer", "encoder", paraformer.encoder_parameters(), rtf["paraformer encoder"], None),
        ("Paraformer", "recognition (NAR)", paraformer.parameters(active_only=True), rtf["paraformer"], None),
        ("ours", "encoder", encoder_parameters, rtf["encoder"], rtf["encoder"] / rtf["paraformer encoder"]),
        ("ours", "encoder + CIF", None, rtf["encoder + CIF"], None),
        ("ours", "greedy", active, rtf["greedy"], rtf["greedy"] / rtf["paraformer"]),
        ("ours", "beam 10", active, rtf["beam 10"], rtf["beam 10"] / rtf["paraformer"]),
    ]
    for system, what, parameters, value, ratio in rows:
        count = f"{parameters / 1e6:.1f} M" if parameters else ""
        print(f"{system:<12} {what:<22} {count:>11} {value:>8.4f} {f'{ratio:.2f}x' if ratio else '':>13}")
    cif_ms = (seconds["encoder + CIF"] - seconds["encoder"]) / len(inputs) * 1e3
    step_ms = {
        mode: (seconds[mode] - seconds["encoder + CIF"]) / our_tokens * 1e3 for mode in ("greedy", "beam 10")
    }
    print(
        f"ours, where the time goes: encoder {seconds['encoder'] / len(inputs) * 1e3:.1f} ms per utterance, "
        f"CIF {cif_ms:.2f} ms per utterance, decoder {step_ms['greedy']:.2f} ms per step greedy, "
        f"{step_ms['beam 10']:.2f} ms per step beam 10 (search and hypotheses included)"
    )
    ratios = {
        "greedy": rtf["greedy"] / rtf["paraformer"],
        "beam 10": rtf["beam 10"] / rtf["paraformer"],
        "encoder": rtf["encoder"] / rtf["paraformer encoder"],
    }
    verdicts = [
        f"{name} {ratios[name]:.2f}x (target <= {limit:.2f}x: {'met' if ratios[name] <= limit else 'missed'})"
        for name, limit in TARGETS.items()
    ]
    print("targets: " + ", ".join(verdicts))


def modes_table(model, dictionary, devices: List[str], utterances: int) -> None:
    """RTF of greedy, beam 10 and beam 10 + LM at batch 1 and 16 on each device."""
    lm = random_language_model(dictionary)
    print(f"\nper search mode, {utterances} utterances of 3-6 s, CPU threads {torch.get_num_threads()}")
    print(f"{'device':<6} {'batch':>5} {'mode':<16} {'RTF':>8} {'x real time':>12}")
    for device in devices:
        model.to(device).eval()
        lm.to(device)
        for batch_size in (1, 16):
            batches = make_batches(utterances, batch_size, device)
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=16, help="utterances decoded per configuration")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: one core)")
    parser.add_argument("--passes", type=int, default=10, help="timed passes of the side-by-side (median)")
    parser.add_argument(
        "--devices", nargs="+", default=None, help="cpu and/or cuda (default: cpu, cuda if present)"
    )
    parser.add_argument(
        "--side-by-side-only", action="store_true", help="skip the per-mode table (LM fusion, batch 16)"
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
    model.eval()
    dictionary = task.target_dictionary
    print(f"torch {torch.__version__}, CPU threads {torch.get_num_threads()}")
    side_by_side(model, dictionary, make_batches(args.utterances, 1, "cpu"), args.passes)
    if not args.side_by_side_only:
        modes_table(model, dictionary, devices, args.utterances)
    return 0


if __name__ == "__main__":
    sys.exit(main())

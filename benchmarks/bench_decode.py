"""Real-time factor of CIF decoding, side by side with FunASR's Paraformer, then per search mode.

Side by side (CPU, batch 1): the same 16 random fbank inputs of 3-6 s go through Paraformer (built
from FunASR's AISHELL-1 recipe with random weights by paraformer_peer.py, its predictor set to the
same token rate as ours) and through our model, each timed over all inputs in every pass, the
systems taking turns on each input; the table gives the median of ``--passes`` passes after a
warm-up and the ratios to Paraformer (the median over the passes of our time over Paraformer's in
the same pass, and their range): greedy and beam 10 against its recognition, our encoder
against its encoder grown to the same parameter count (ours has 15 blocks, the recipe 12; the
recipe's encoder is timed too). Where our time goes (encoder, CIF, search per step) is measured
inside the same greedy and beam runs.
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
from typing import Dict, List, Tuple

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
TARGETS = {"greedy": 1.0, "beam 10": 1.15, "encoder": 1.10}  # at most this x Paraformer's RTF (encoder: at
# equal parameter count)


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


class _StageClock:
    """Adds up the wall time a model spends in ``forward_encoder`` and ``forward_cif`` while active,
    so that a decoding run's own calls give its breakdown (no separate, unpaired runs)."""

    def __init__(self, model):
        self.model = model
        self.seconds = {"encoder": 0.0, "CIF": 0.0}

    def _timed(self, stage: str, function):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - start

        return timed

    def __enter__(self):
        self.seconds = {"encoder": 0.0, "CIF": 0.0}
        self.model.forward_encoder = self._timed(
            "encoder", type(self.model).forward_encoder.__get__(self.model)
        )
        self.model.forward_cif = self._timed("CIF", type(self.model).forward_cif.__get__(self.model))
        return self

    def __exit__(self, *unused):
        del self.model.forward_encoder, self.model.forward_cif  # the class's methods again


def _pass_times(
    systems: Dict, count: int, passes: int, clock: _StageClock
) -> Dict[str, Dict[str, List[float]]]:
    """Per system and pass, its time for all ``count`` inputs ("total") and the encoder and CIF time
    inside it. Within a pass the systems take turns on each input, so that every system meets the
    same machine state within milliseconds; one warm-up pass first."""
    for index in range(count):
        for run in systems.values():
            run(index)
    times: Dict[str, Dict[str, List[float]]] = {name: {} for name in systems}
    for _ in range(passes):
        sums = {name: {"total": 0.0, "encoder": 0.0, "CIF": 0.0} for name in systems}
        for index in range(count):
            for name, run in systems.items():
                with clock:
                    start = time.perf_counter()
                    run(index)
                    sums[name]["total"] += time.perf_counter() - start
                for stage, seconds in clock.seconds.items():
                    sums[name][stage] += seconds
        for name, stages in sums.items():
            for stage, seconds in stages.items():
                times[name].setdefault(stage, []).append(seconds)
    return times


def _paired_ratio(times, ours: str, theirs: str) -> Tuple[float, float, float]:
    """Median, lowest and highest over the passes of our time / theirs in the same pass."""
    ratios = sorted(a / b for a, b in zip(times[ours]["total"], times[theirs]["total"], strict=True))
    return statistics.median(ratios), ratios[0], ratios[-1]


def _equal_parameter_blocks(paraformer, target: int) -> int:
    """Encoder blocks that bring Paraformer's encoder nearest ``target`` parameters."""
    blocks = paraformer.model.encoder.encoders
    per_block = sum(p.numel() for p in blocks[0].parameters())
    return len(blocks) + round((target - paraformer.encoder_parameters()) / per_block)


def side_by_side(model, dictionary, batches: List[Dict], passes: int) -> None:
    """Paraformer against our model on the same inputs, batch 1, CPU (see the module docstring)."""
    problem = paraformer_peer.import_error()
    if problem is not None:
        print(f"side by side with Paraformer skipped: {problem}")
        return
    encoder_parameters = sum(p.numel() for p in model.encoder.parameters())
    paraformer = paraformer_peer.Paraformer(len(dictionary), TOKENS_PER_SECOND)
    equal_blocks = _equal_parameter_blocks(paraformer, encoder_parameters)
    paraformer_equal = paraformer_peer.Paraformer(len(dictionary), TOKENS_PER_SECOND, equal_blocks)
    inputs = [(b["net_input"]["src_tokens"], b["net_input"]["src_lengths"]) for b in batches]
    audio_seconds = sum(float(lengths.sum()) * FRAME_SECONDS for _, lengths in inputs)
    greedy, beam = CifGenerator(model, dictionary, beam=1), CifGenerator(model, dictionary, beam=10)
    with torch.no_grad():
        threshold = greedy.tail_threshold
        cifs = [model.forward_cif(model.forward_encoder(x, n), tail_threshold=threshold) for x, n in inputs]
    our_tokens = sum(int(c["fire_counts"].sum()) for c in cifs)
    their_tokens = sum(paraformer.recognise(x) for x, _ in inputs)

    systems = {
        "paraformer encoder": lambda i: paraformer.encode(inputs[i][0]),
        "paraformer encoder, equal parameters": lambda i: paraformer_equal.encode(inputs[i][0]),
        "paraformer": lambda i: paraformer.recognise(inputs[i][0]),
        "encoder": torch.no_grad()(lambda i: model.forward_encoder(*inputs[i])),
        "greedy": lambda i: greedy.generate([model], batches[i]),
        "beam 10": lambda i: beam.generate([model], batches[i]),
    }
    times = _pass_times(systems, len(inputs), passes, _StageClock(model))
    seconds = {
        name: {stage: statistics.median(v) for stage, v in stages.items()} for name, stages in times.items()
    }
    rtf = {name: stages["total"] / audio_seconds for name, stages in seconds.items()}
    active = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("ctc_proj"))
    print(
        f"\nside by side, batch 1, CPU, {torch.get_num_threads()} thread(s), {len(inputs)} utterances "
        f"({audio_seconds:.1f} s), median of {passes} passes; tokens decoded: ours {our_tokens}, "
        f"Paraformer {their_tokens}"
    )
    recipe, equal = "paraformer encoder", "paraformer encoder, equal parameters"
    equal_parameters = paraformer_equal.encoder_parameters()
    compared = {"greedy": "paraformer", "beam 10": "paraformer", "encoder": equal}
    ratios = {name: _paired_ratio(times, name, theirs) for name, theirs in compared.items()}
    print(f"{'system':<12} {'what is timed':<38} {'parameters':>10} {'RTF':>8} {'x Paraformer (range)':>22}")
    rows = [
        ("Paraformer", "encoder (recipe, 12 blocks)", paraformer.encoder_parameters(), recipe),
        ("Paraformer", f"encoder, {equal_blocks} blocks (equal parameters)", equal_parameters, equal),
        ("Paraformer", "recognition (NAR)", paraformer.parameters(active_only=True), "paraformer"),
        ("ours", "encoder", encoder_parameters, "encoder"),
        ("ours", "greedy", active, "greedy"),
        ("ours", "beam 10", active, "beam 10"),
    ]  # fmt: skip
    for system, what, parameters, name in rows:
        ratio = "{:.2f}x ({:.2f}-{:.2f})".format(*ratios[name]) if name in ratios else ""
        print(f"{system:<12} {what:<38} {parameters / 1e6:>8.1f} M {rtf[name]:>8.4f} {ratio:>22}")
    print("ours, encoder against the recipe's 12-block encoder: {:.2f}x ({:.2f}-{:.2f})".format(
        *_paired_ratio(times, "encoder", recipe)))  # fmt: skip
    for mode in ("greedy", "beam 10"):
        stages = seconds[mode]
        decoding = stages["total"] - stages["encoder"] - stages["CIF"]
        print(
            f"ours, {mode}, where the time goes (inside the same runs): encoder "
            f"{stages['encoder'] / len(inputs) * 1e3:.1f} ms, CIF {stages['CIF'] / len(inputs) * 1e3:.2f} ms "
            f"per utterance; search and hypotheses {decoding / our_tokens * 1e3:.2f} ms per step"
        )
    verdicts = []
    for name, limit in TARGETS.items():
        ratio = ratios[name][0]
        verdicts.append(
            f"{name} {ratio:.2f}x (target <= {limit:.2f}x: {'met' if ratio <= limit else 'missed'})"
        )
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

"""Streaming recognition on the demo's test set: CER, compute real-time factor and emission latency
per chunk size, beside the same model at full context (docs/streaming.md).

Each test utterance's audio is fed to a streaming session (greedy search) in ``--piece-ms`` pieces (40
ms: what a microphone stream delivers), one utterance at a time on ``--threads`` CPU threads. A chunk
is computed as soon as its audio (and the 15 ms the last filterbank window reaches past it) has
arrived. Per chunk size:

- CER of the final transcripts against the references;
- compute RTF: the time spent in the session (features, encoder, CIF, decoder) / audio duration;
- emission latency of each token: (audio received when the token was emitted) - (the token's end in
  an offline forced alignment of the transcript with the model's CTC head at full context), median
  and 90th percentile over all tokens.

Full context decodes each whole utterance offline (``Recognizer.transcribe``); its tokens are all
"emitted" at the end of the audio. Targets at 640 ms: CER within 1.2x of full context (or +0.5
absolute on this easy corpus), median latency <= 800 ms, compute RTF <= 0.1.

Usage: .venv/bin/python benchmarks/bench_streaming.py --model exp/cif_tiny_streaming/checkpoint_last.pt \
           --data data/prepared_gcmvn --corpus-root data/corpus [--chunks-ms 320 640 1280] [--limit N]
"""

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "scripts"))

from score_cer import score  # noqa: E402

from cif_plugin.inference import Recognizer  # noqa: E402
from cif_plugin.tasks.fbank_features import SAMPLE_RATE, AudioError, load_waveform  # noqa: E402

TARGET_CHUNK_MS, TARGET_CER_RATIO, TARGET_CER_ABSOLUTE = 640, 1.2, 0.5
TARGET_MEDIAN_LATENCY, TARGET_RTF = 0.8, 0.1


def read_test_set(
    data: Path, corpus_root: Path, split: str, limit: Optional[int]
) -> List[Tuple[str, Path, str]]:
    """(utterance id, wav path, reference characters) of the split, in manifest order."""
    with open(data / f"{split}.tsv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    wav_root = corpus_root / "data_aishell" / "wav" / split
    items = [
        (row["id"], wav_root / row["id"][6:11] / f"{row['id']}.wav", "".join(row["tgt_text"].split()))
        for row in rows
    ]
    missing = [str(path) for _, path, _ in items if not path.is_file()]
    if missing:
        raise SystemExit(f"{len(missing)} test utterances have no audio under {wav_root}, e.g. {missing[0]}")
    return items[: limit or len(items)]


def token_ends(recognizer: Recognizer, waveform: torch.Tensor, text: str) -> List[float]:
    """End time of each character of ``text`` in a forced alignment at full context ([] if it fails)."""
    if not text:
        return []
    try:
        return [token.end for token in recognizer.align((waveform[0].numpy(), SAMPLE_RATE), text).tokens]
    except (ValueError, AudioError):  # more characters than the CTC frames can hold
        return []


def stream_one(recognizer: Recognizer, waveform: torch.Tensor, chunk_ms: int, piece_ms: int):
    """(text, emission times, seconds of compute) of one utterance fed ``piece_ms`` at a time."""
    samples = waveform[0].numpy()
    started = time.perf_counter()
    session = recognizer.stream(chunk_ms)
    piece = round(piece_ms / 1000 * SAMPLE_RATE)
    for start in range(0, len(samples), piece):
        session.accept_waveform(samples[start : start + piece])
    session.finalize()
    seconds = time.perf_counter() - started
    return session.transcript.text, [token.emitted_at for token in session.emitted], seconds


def evaluate(
    recognizer: Recognizer, items, waveforms: Dict[str, torch.Tensor], chunk_ms: int, piece_ms: int
) -> Dict:
    """CER, RTF and latency of one chunk size (0: full context, offline)."""
    encoder = recognizer.model.encoder
    references, hypotheses, latencies, compute, audio = {}, {}, [], 0.0, 0.0
    for utt_id, _, reference in tqdm(items, desc=f"chunk {chunk_ms or 'full'} ms", unit="utt", mininterval=5):
        waveform = waveforms[utt_id]
        duration = waveform.size(1) / SAMPLE_RATE
        if chunk_ms:
            text, emitted, seconds = stream_one(recognizer, waveform, chunk_ms, piece_ms)
        else:
            started = time.perf_counter()
            text = recognizer.transcribe([(waveform[0].numpy(), SAMPLE_RATE)])[0].text
            seconds = time.perf_counter() - started
            emitted = [duration] * len(text)
        references[utt_id], hypotheses[utt_id] = reference, text
        chunk, encoder.chunk_size = encoder.chunk_size, 0  # align at full context
        ends = token_ends(recognizer, waveform, text)
        encoder.chunk_size = chunk
        latencies += [when - end for when, end in zip(emitted, ends, strict=False)]
        compute += seconds
        audio += duration
    total, _ = score(references, hypotheses)
    ordered = sorted(latencies)
    return {
        "cer": 100.0 * total.errors / max(total.reference_length, 1),
        "rtf": compute / audio,
        "median": statistics.median(ordered) if ordered else float("nan"),
        "p90": ordered[int(0.9 * (len(ordered) - 1))] if ordered else float("nan"),
        "tokens": len(ordered),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, required=True, help="a chunk-causal model's checkpoint or package"
    )
    parser.add_argument(
        "--data", type=Path, required=True, help="its prepared data folder (manifests, config)"
    )
    parser.add_argument("--corpus-root", type=Path, required=True, help="the corpus tree with the test audio")
    parser.add_argument("--split", default="test", help="the split to decode (default test)")
    parser.add_argument(
        "--chunks-ms", type=int, nargs="+", default=[320, 640, 1280], help="chunk lengths to stream with"
    )
    parser.add_argument("--piece-ms", type=int, default=40, help="audio fed per call (default 40 ms)")
    parser.add_argument("--limit", type=int, help="decode only the first N utterances")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--output", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recognizer = Recognizer.from_pretrained(args.model, data=str(args.data))
    recognizer.model.encoder.chunk_size = 0
    items = read_test_set(args.data, args.corpus_root, args.split, args.limit)
    waveforms = {utt_id: load_waveform(path) for utt_id, path, _ in items}
    results = {
        chunk: evaluate(recognizer, items, waveforms, chunk, args.piece_ms) for chunk in [0, *args.chunks_ms]
    }
    lines = [
        f"{len(items)} utterances of {args.split}, greedy, {torch.get_num_threads()} thread(s), "
        f"audio fed in {args.piece_ms} ms pieces",
        "",
        "| chunk | CER | compute RTF | latency median | latency p90 | tokens timed |",
        "|---|---|---|---|---|---|",
    ]
    for chunk, result in results.items():
        name = f"{chunk} ms" if chunk else "full context"
        lines.append(
            f"| {name} | {result['cer']:.2f} % | {result['rtf']:.4f} | {result['median'] * 1000:.0f} ms "
            f"| {result['p90'] * 1000:.0f} ms | {result['tokens']} |"
        )
    if TARGET_CHUNK_MS in results:
        full, target = results[0], results[TARGET_CHUNK_MS]
        cer_limit = max(TARGET_CER_RATIO * full["cer"], full["cer"] + TARGET_CER_ABSOLUTE)
        verdicts = [
            ("CER", target["cer"] <= cer_limit, f"{target['cer']:.2f} % <= {cer_limit:.2f} %"),
            (
                "median latency",
                target["median"] <= TARGET_MEDIAN_LATENCY,
                f"{target['median']:.3f} s <= 0.8 s",
            ),
            ("compute RTF", target["rtf"] <= TARGET_RTF, f"{target['rtf']:.4f} <= {TARGET_RTF}"),
        ]
        lines.append("")
        lines.append(
            f"targets at {TARGET_CHUNK_MS} ms: "
            + ", ".join(f"{name} {text}: {'met' if ok else 'missed'}" for name, ok, text in verdicts)
        )
    table = "\n".join(lines) + "\n"
    sys.stdout.write(table)
    if args.output:
        args.output.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

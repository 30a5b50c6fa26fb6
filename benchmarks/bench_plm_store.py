"""Size and load time of our PLM feature store against the published format, in one run.

Published (the CIF-HieraDist code; docs/differences.md, "PLM features"): one float32
``<utt_id>.npy`` per utterance, padded to the longest sentence of its extraction batch of 256, and a
JSON index of every utterance
(``{"data": [{"utt_id", "input_ids", "padding_mask", "length", "feat_path"}]}``, indent 4) that
every dataset and worker loads whole. Ours: one float16 file per split without padding rows, a
small TSV index and memory-mapped reads (``cif_plugin/modules/plm_feature_store.py``).

Both hold the same random features for AISHELL-1-like sentences (5-30 characters + [CLS]/[SEP],
768 dimensions). Printed: bytes per real token on disk, time to open the store (index), time to
read every utterance's features as float32, and the ratios published / ours.

Usage: python benchmarks/bench_plm_store.py [--utterances 3000] [--dim 768]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cif_plugin.tasks.plm_feature_store import PlmFeatureStore, PlmFeatureStoreWriter

BATCH = 256


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def write_published(folder: Path, utterances) -> None:
    folder.mkdir()
    entries = []
    for start in range(0, len(utterances), BATCH):
        batch = utterances[start : start + BATCH]
        width = max(len(features) for _, features in batch)
        for utt_id, features in batch:
            padded = np.zeros((width, features.shape[1]), dtype=np.float32)
            padded[: len(features)] = features
            path = folder / f"{utt_id}.npy"
            np.save(path, padded)
            entries.append(
                {
                    "utt_id": utt_id,
                    "input_ids": [101] * len(features) + [0] * (width - len(features)),
                    "padding_mask": [1] * len(features) + [0] * (width - len(features)),
                    "length": len(features),
                    "feat_path": str(path),
                }  # fmt: skip
            )
    (folder / "text_feat.json").write_text(json.dumps({"data": entries}, indent=4))


def read_published(folder: Path):
    start = time.perf_counter()
    index = {entry["utt_id"]: entry for entry in json.loads((folder / "text_feat.json").read_text())["data"]}
    opened = time.perf_counter() - start
    features = [np.load(entry["feat_path"])[: entry["length"]] for entry in index.values()]
    return opened, time.perf_counter() - start, features


def read_ours(folder: Path, ids):
    start = time.perf_counter()
    store = PlmFeatureStore(folder)
    opened = time.perf_counter() - start
    features = [np.asarray(store[utt_id], dtype=np.float32) for utt_id in ids]
    return opened, time.perf_counter() - start, features


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--utterances", type=int, default=3000, help="utterances in each store")
    parser.add_argument("--dim", type=int, default=768, help="feature dimension (768: bert-base-chinese)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    utterances = [
        (f"U{i:06d}", rng.normal(size=(int(rng.integers(5, 31)) + 2, args.dim)).astype(np.float32))
        for i in range(args.utterances)
    ]
    tokens = sum(len(features) for _, features in utterances)
    with tempfile.TemporaryDirectory() as tmp:
        ours_dir, published_dir = Path(tmp) / "ours", Path(tmp) / "published"
        with PlmFeatureStoreWriter(
            ours_dir, "train", {"model": "random", "layer": -1, "dim": args.dim}
        ) as writer:
            for utt_id, features in utterances:
                writer.add(utt_id, features)
        write_published(published_dir, utterances)
        ours_bytes, published_bytes = folder_bytes(ours_dir), folder_bytes(published_dir)
        published = read_published(published_dir)
        ours = read_ours(ours_dir, [utt_id for utt_id, _ in utterances])
        worst = max(np.abs(a - b).max() for a, b in zip(ours[2], published[2], strict=True))
    print(
        f"{args.utterances} utterances, {tokens} tokens, {args.dim}-d; max |ours - published| = {worst:.1e}"
    )
    print(f"{'':<24} {'published':>12} {'ours':>12} {'published/ours':>15}")
    rows = [
        ("bytes per token", published_bytes / tokens, ours_bytes / tokens, "{:12.0f}"),
        ("open the index (ms)", published[0] * 1e3, ours[0] * 1e3, "{:12.1f}"),
        ("read all features (ms)", published[1] * 1e3, ours[1] * 1e3, "{:12.1f}"),
    ]
    for name, theirs, mine, number in rows:
        print(f"{name:<24} {number.format(theirs)} {number.format(mine)} {theirs / mine:14.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

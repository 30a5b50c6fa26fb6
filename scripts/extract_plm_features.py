"""Extract pre-trained language model (PLM) token features for hierarchical distillation.

Texts are read from the task's manifests (``<data>/<split>.tsv``, column tgt_text), so they are
exactly the training targets. Every target token becomes exactly one PLM token (tokens the PLM does
not know become its unknown token), so each utterance yields n_tokens + 2 vectors: [CLS], the tokens,
[SEP]; [SEP] lines up with the ``</s>`` target. This is checked for every utterance.

Features of the chosen layer (default: the last) go to a float16 store without padding rows, indexed
by utterance id, with ``meta.json`` naming the model, layer, dimension and tokenisation
(``cif_plugin/modules/plm_feature_store.py``). Batches are sorted by length; a killed run resumes.

Usage: python scripts/extract_plm_features.py --data data/prepared --plm /models/bert-base-chinese
"""

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from tqdm import tqdm
from transformers import AutoModel, AutoTokenizer

from cif_plugin.tasks.manifest_rows import ManifestError, read_manifest_rows
from cif_plugin.tasks.plm_feature_store import PlmFeatureStoreWriter

TOKENISATION = "one PLM token per target token: [CLS] tokens [SEP]; unknown tokens -> the PLM's unknown token"


def read_manifest(path: Path) -> List[Tuple[str, List[str]]]:
    """(id, tokens) of the rows the task trains on (``read_manifest_rows``: same checks, same skips)."""
    rows, _ = read_manifest_rows(path)
    return [(row["id"], row["tgt_text"].split()) for row in rows]


def token_ids(tokenizer, tokens: List[str]) -> List[int]:
    """[CLS] + one id per token (unknown -> unk) + [SEP]."""
    ids = [tokenizer.cls_token_id] + tokenizer.convert_tokens_to_ids(tokens) + [tokenizer.sep_token_id]
    return [tokenizer.unk_token_id if i is None else i for i in ids]


def extract_split(split: str, rows: List[Tuple[str, List[str]]], args, tokenizer, model, meta: dict) -> None:
    unknown = 0
    with PlmFeatureStoreWriter(args.output, split, meta) as writer:
        todo = sorted((row for row in rows if row[0] not in writer), key=lambda row: len(row[1]))
        progress = tqdm(total=len(todo), desc=f"{split}", unit="utt", file=sys.stderr)
        for start in range(0, len(todo), args.batch_size):
            batch = todo[start : start + args.batch_size]
            ids = [token_ids(tokenizer, tokens) for _, tokens in batch]
            for (utt_id, tokens), row_ids in zip(batch, ids, strict=True):
                if len(row_ids) != len(tokens) + 2:
                    raise ValueError(f"{utt_id}: {len(row_ids)} PLM tokens for {len(tokens)} target tokens")
                unknown += sum(i == tokenizer.unk_token_id for i in row_ids)
            width = max(len(row) for row in ids)
            input_ids = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
            attention_mask = torch.zeros_like(input_ids)
            for i, row in enumerate(ids):
                input_ids[i, : len(row)] = torch.tensor(row)
                attention_mask[i, : len(row)] = 1
            with torch.no_grad():
                output = model(
                    input_ids=input_ids.to(args.device),
                    attention_mask=attention_mask.to(args.device),
                    output_hidden_states=True,
                )
            features = output.hidden_states[args.layer].float().cpu().numpy()
            for i, (utt_id, _) in enumerate(batch):
                writer.add(utt_id, features[i, : len(ids[i])])
            progress.update(len(batch))
        progress.close()
    print(
        f"{split}: {len(rows)} utterances in the store ({len(todo)} extracted now, {unknown} unknown tokens)"
    )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, required=True, help="folder with the <split>.tsv manifests")
    parser.add_argument("--plm", required=True, help="a local Hugging Face model folder (or a cached name)")
    parser.add_argument(
        "--splits", nargs="+", help="splits to extract (default: every <split>.tsv in --data)"
    )
    parser.add_argument(
        "--layer", type=int, default=-1, help="hidden layer to store: -1 the last, 0 the embeddings"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per PLM forward pass")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--output", type=Path, help="store folder (default: <data>/plm_features)")
    args = parser.parse_args(argv)
    args.output = args.output or args.data / "plm_features"
    splits = args.splits or sorted(
        p.stem for p in args.data.glob("*.tsv") if not p.name.endswith(".skipped.tsv")
    )
    try:  # every manifest is checked before anything is written
        rows_of_split = {split: read_manifest(args.data / f"{split}.tsv") for split in splits}
    except (ManifestError, FileNotFoundError) as error:
        parser.error(str(error))
    tokenizer = AutoTokenizer.from_pretrained(args.plm)
    model = AutoModel.from_pretrained(args.plm).to(args.device).eval()
    meta = {
        "model": str(args.plm),
        "layer": args.layer,
        "dim": model.config.hidden_size,
        "tokenisation": TOKENISATION,
    }
    for split in splits:
        extract_split(split, rows_of_split[split], args, tokenizer, model, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())

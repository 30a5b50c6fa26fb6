"""Make a small BERT with RANDOM weights over a fairseq dictionary's characters.

For plumbing checks of the distillation pipeline without a real pre-trained model (no model hub is
reachable here): features of a random BERT carry no linguistic knowledge, so a model distilled from
them says nothing about distillation. Real runs use a local bert-base-chinese (--plm in the recipes).

Usage: python scripts/make_random_bert.py --vocab-from data/dict.txt --output exp/random_bert
"""

import argparse
import shutil
import sys
from pathlib import Path
from typing import List, Optional

import torch
from transformers import BertConfig, BertModel, BertTokenizer

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--vocab-from", type=Path, required=True, help="fairseq dictionary (<token> <count> lines)"
    )
    parser.add_argument("--output", type=Path, required=True, help="folder for the Hugging Face model")
    parser.add_argument("--hidden-size", type=int, default=32, help="hidden size = feature dimension")
    parser.add_argument("--layers", type=int, default=2, help="Transformer layers")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random weights")
    args = parser.parse_args(argv)
    tokens = [
        line.rsplit(" ", 1)[0] for line in args.vocab_from.read_text(encoding="utf-8").splitlines() if line
    ]
    # Written in a sibling folder and renamed into place: a killed run never leaves a partial model.
    partial = args.output.with_name(args.output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "vocab.txt").write_text("\n".join(SPECIALS + tokens) + "\n", encoding="utf-8")
    BertTokenizer(str(partial / "vocab.txt")).save_pretrained(partial)
    torch.manual_seed(args.seed)
    config = BertConfig(
        vocab_size=len(SPECIALS) + len(tokens), hidden_size=args.hidden_size, num_hidden_layers=args.layers,
        num_attention_heads=2, intermediate_size=2 * args.hidden_size, max_position_embeddings=512,
    )  # fmt: skip
    BertModel(config).save_pretrained(partial)
    _replace_folder(partial, args.output)
    print(f"{args.output}: a BERT with RANDOM weights ({args.hidden_size}-d) for plumbing checks only")
    return 0


def _replace_folder(new: Path, target: Path) -> None:
    """Move ``new`` to ``target``; an existing ``target`` is set aside first and removed last."""
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

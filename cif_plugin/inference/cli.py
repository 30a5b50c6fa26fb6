"""Command-line options shared by the scripts that decode (transcribe, align, plot_alignment)."""

import argparse
import logging
from pathlib import Path

from ..decoding_defaults import DECODING_TAIL_THRESHOLD, DEFAULT_HOTWORD_SCORE

__all__ = ["add_model_arguments", "recognizer_from_args"]


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and search options (shared with align.py and plot_alignment.py)."""
    parser.add_argument(
        "--model",
        "--checkpoint",
        dest="model",
        type=Path,
        required=True,
        help="a model package (scripts/export_model.py) or a checkpoint of a CIF, CTC or ASG model",
    )
    parser.add_argument(
        "--data", type=Path, help="a checkpoint's data folder (default: the one it was trained on)"
    )
    parser.add_argument(
        "--beam", type=int, default=10, help="beam size (1: greedy; ASG models decode with Viterbi)"
    )
    parser.add_argument(
        "--tail-threshold",
        type=float,
        default=DECODING_TAIL_THRESHOLD,
        help="CIF models: tail firing threshold",
    )
    parser.add_argument("--lm-path", help="a fairseq LM checkpoint over the same dictionary (shallow fusion)")
    parser.add_argument(
        "--ngram-lm-path", help="CTC models: an ARPA n-gram LM, read by kenlm (shallow fusion)"
    )
    parser.add_argument(
        "--lm-weight",
        type=float,
        default=None,
        help="LM weight in shallow fusion (default 0; an ONNX folder exported with an LM: its weight)",
    )
    parser.add_argument(
        "--ctc-token-bonus", type=float, default=0.0, help="CTC prefix beam search: score per label"
    )
    parser.add_argument(
        "--hotwords",
        type=Path,
        metavar="FILE",
        help="CIF and CTC models: phrases to bias the search towards, one a line, optionally followed "
        "by its own per-token score (docs/hotwords.md)",
    )
    parser.add_argument(
        "--hotword-score",
        type=float,
        default=DEFAULT_HOTWORD_SCORE,
        help="per-token bonus of a hotword without its own score",
    )
    parser.add_argument("--onset", type=float, default=0.1, help="CIF models: weight at which a token starts")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")


def recognizer_from_args(args: argparse.Namespace, **kwargs):
    """A :class:`~cif_plugin.inference.Recognizer` of the options (imported here: the options
    themselves load without torch)."""
    from .recognizer import Recognizer

    logging.getLogger("fairseq").setLevel(logging.WARNING)
    logging.getLogger("cif_plugin").setLevel(logging.WARNING)
    return Recognizer.from_pretrained(
        args.model,
        device=args.device,
        beam=args.beam,
        lm_path=args.lm_path,
        ngram_lm_path=args.ngram_lm_path,
        lm_weight=args.lm_weight,
        ctc_token_bonus=args.ctc_token_bonus,
        tail_threshold=args.tail_threshold,
        data=args.data,
        hotwords=args.hotwords,
        hotword_score=args.hotword_score,
        onset=args.onset,
        **kwargs,
    )

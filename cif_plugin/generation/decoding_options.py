"""The decoding settings every model family's generator is built from, and their command line.

fairseq-generate parses only its own generation options (``--beam``, ``--nbest``, ``--lm-path``,
``--lm-weight``) and the task's, so the task adds :func:`add_decoding_arguments`; each model's
``build_generator`` reads the settings it uses from one :class:`DecodingOptions`.
"""

import argparse
from dataclasses import dataclass
from typing import Optional

from ..modules.cif import DECODING_TAIL_THRESHOLD
from ..ops.hotwords import DEFAULT_HOTWORD_SCORE, HotwordSource

__all__ = ["DecodingOptions", "add_decoding_arguments"]


@dataclass
class DecodingOptions:
    """What a generator needs besides the model and the dictionary.

    Attributes:
        beam (int): beam size (1: greedy). nbest (int): hypotheses per utterance.
        lm_path (str, optional): a fairseq LM checkpoint over the ASR dictionary (shallow fusion).
        ngram_lm_path (str, optional): an ARPA n-gram LM read by ``kenlm`` (CTC models).
        lm_weight (float): weight of the LM log-probabilities.
        ctc_token_bonus (float): CTC prefix beam search: score added per emitted label.
        tail_threshold (float): CIF tail firing threshold at decoding time.
        data_dir (str, optional): the folder with dict.txt a fairseq LM's task is pointed at.
        hotwords (optional): a hotword file, or a list of phrases / (phrase, score) pairs, to bias
            CIF and CTC search towards (``hotwords.py``).
        hotword_score (float): per-token bonus of a hotword without its own score.
    """

    beam: int = 1
    nbest: int = 1
    lm_path: Optional[str] = None
    ngram_lm_path: Optional[str] = None
    lm_weight: float = 0.0
    ctc_token_bonus: float = 0.0
    tail_threshold: float = DECODING_TAIL_THRESHOLD
    data_dir: Optional[str] = None
    hotwords: Optional[HotwordSource] = None
    hotword_score: float = DEFAULT_HOTWORD_SCORE

    def __post_init__(self):
        if self.ngram_lm_path and self.lm_path:
            raise ValueError("fuse one LM: --lm-path (fairseq) or --ngram-lm-path (n-gram), not both")
        if self.nbest > self.beam:
            raise ValueError(f"--nbest {self.nbest} cannot exceed --beam {self.beam}")

    @classmethod
    def from_fairseq(cls, generation_args, task_args) -> "DecodingOptions":
        """From fairseq-generate's generation options and the task's (``add_decoding_arguments``)."""
        return cls(
            beam=generation_args.beam,
            nbest=generation_args.nbest,
            lm_path=getattr(generation_args, "lm_path", None),
            ngram_lm_path=getattr(task_args, "ngram_lm_path", None),
            lm_weight=getattr(generation_args, "lm_weight", 0.0),
            ctc_token_bonus=getattr(task_args, "ctc_token_bonus", 0.0),
            tail_threshold=getattr(task_args, "decoding_tail_threshold", DECODING_TAIL_THRESHOLD),
            data_dir=task_args.data,
            hotwords=getattr(task_args, "hotwords", None),
            hotword_score=getattr(task_args, "hotword_score", DEFAULT_HOTWORD_SCORE),
        )


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    """The decoding options fairseq-generate does not have."""
    parser.add_argument(
        "--decoding-tail-threshold",
        type=float,
        default=DECODING_TAIL_THRESHOLD,
        help=f"CIF models: tail firing threshold when decoding ({DECODING_TAIL_THRESHOLD} as published)",
    )
    parser.add_argument(
        "--ngram-lm-path",
        default=None,
        help="CTC models: an ARPA n-gram LM (words = dictionary symbols; read by kenlm) fused in "
        "prefix beam search at --lm-weight (fairseq-generate reads --lm-path itself, as a fairseq LM)",
    )
    parser.add_argument(
        "--ctc-token-bonus",
        type=float,
        default=0.0,
        help="CTC prefix beam search: score added per emitted label (offsets an LM's per-label cost)",
    )
    parser.add_argument(
        "--hotwords",
        default=None,
        metavar="FILE",
        help="CIF and CTC models: bias the search towards these phrases (one a line, optionally "
        "followed by its own per-token score); combines with LM fusion (docs/hotwords.md)",
    )
    parser.add_argument(
        "--hotword-score",
        type=float,
        default=DEFAULT_HOTWORD_SCORE,
        help="per-token bonus of a hotword without its own score in the --hotwords file",
    )

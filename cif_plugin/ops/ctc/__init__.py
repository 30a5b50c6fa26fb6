"""Everything about the CTC output topology: the blank, the loss, greedy and prefix beam search,
forced alignment, and token spans on the frame clock. Plain PyTorch (and torchaudio's aligner)."""

from ..ctc_prefix_search import CtcPrefixSearch, PrefixScorer, ctc_prefix_beam_search
from .alignment import ctc_forced_align, ctc_viterbi_path
from .blank import CTC_BLANK_SYMBOL, ctc_blank_index
from .greedy import ctc_best_path_scores, ctc_greedy_spans, ctc_greedy_tokens
from .loss import ctc_loss_sum
from .spans import TokenSpan, merge_frame_labels

__all__ = [
    "CTC_BLANK_SYMBOL",
    "PrefixScorer",
    "TokenSpan",
    "ctc_best_path_scores",
    "ctc_blank_index",
    "ctc_forced_align",
    "ctc_greedy_spans",
    "ctc_greedy_tokens",
    "ctc_loss_sum",
    "ctc_prefix_beam_search",
    "CtcPrefixSearch",
    "ctc_viterbi_path",
    "merge_frame_labels",
]

"""CTC forced alignment: the best CTC path that spells a given transcript (Viterbi)."""

from typing import List, Tuple

import torch
import torchaudio.functional
from torch import Tensor

__all__ = ["ctc_viterbi_path", "ctc_forced_align"]


def ctc_viterbi_path(log_probs: Tensor, labels: List[int], blank: int) -> Tuple[Tensor, float]:
    """(T,) frame labels of the most likely path of ``labels`` through (T, V) log-probabilities, and
    its log-probability (torchaudio's forced_align)."""
    repeats = sum(a == b for a, b in zip(labels, labels[1:], strict=False))
    needed = len(labels) + repeats  # a repeated label needs a blank between
    if not labels or log_probs.size(0) < needed:
        raise ValueError(
            f"{log_probs.size(0)} frames cannot hold {len(labels)} labels ({needed} frames needed)"
        )
    path, scores = torchaudio.functional.forced_align(
        log_probs.float().unsqueeze(0), torch.tensor([labels], dtype=torch.int32), blank=blank
    )
    return path[0].long(), float(scores[0].sum())


def ctc_forced_align(log_probs: Tensor, labels: List[int], blank: int) -> List[Tuple[int, int, int]]:
    """(label, first frame, last frame + 1) of every label of the transcript, in order."""
    path, _ = ctc_viterbi_path(log_probs, labels, blank)
    spans = torchaudio.functional.merge_tokens(path.int(), torch.ones(len(path)), blank=blank)
    return [(span.token, span.start, span.end) for span in spans]

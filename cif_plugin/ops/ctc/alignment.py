"""CTC forced alignment: the best CTC path that spells a given transcript (Viterbi)."""

from typing import List, Sequence, Tuple

import torch
import torchaudio.functional
from torch import Tensor

from .spans import TokenSpan, merge_frame_labels

__all__ = ["ctc_forced_align", "ctc_viterbi_path"]


def ctc_viterbi_path(log_probs: Tensor, labels: Sequence[int], blank: int) -> Tuple[Tensor, float]:
    """(T,) frame labels of the most likely path of ``labels`` through (T, V) log-probabilities, and
    its log-probability (torchaudio's ``forced_align``)."""
    labels = list(labels)
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


def ctc_forced_align(log_probs: Tensor, labels: Sequence[int], blank: int) -> List[TokenSpan]:
    """The span of every label of the transcript on the best path, in order."""
    path, _ = ctc_viterbi_path(log_probs, labels, blank)
    return merge_frame_labels(path.tolist(), blank)

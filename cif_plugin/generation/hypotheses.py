"""Hypotheses in the form fairseq-generate reads."""

from typing import Dict, Sequence

import torch
from torch import Tensor

__all__ = ["sequence_hypothesis"]


def sequence_hypothesis(labels: Sequence[int], score, eos: int) -> Dict[str, Tensor]:
    """A hypothesis of a model that scores whole label sequences (CTC, ASG): ``tokens`` = labels +
    ``</s>``, ``score``, ``positional_scores`` zero but on ``</s>``, ``alignment`` None."""
    tokens = torch.tensor(list(labels) + [eos], dtype=torch.long)
    score = torch.as_tensor(score, dtype=torch.float)
    positional = torch.zeros(len(tokens))
    positional[-1] = score
    return {"tokens": tokens, "score": score, "positional_scores": positional, "alignment": None}

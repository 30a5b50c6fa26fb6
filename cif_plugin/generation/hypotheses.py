"""Hypotheses in the form fairseq-generate reads."""

from typing import Dict, List, Optional, Sequence

import torch

from ..ops.token_span import TokenSpan

__all__ = ["sequence_hypothesis"]


def sequence_hypothesis(
    labels: Sequence[int], score, eos: int, token_spans: Optional[List[TokenSpan]] = None
) -> Dict:
    """A hypothesis of a model that scores whole label sequences (CTC, ASG): ``tokens`` = labels +
    ``</s>``, ``score``, ``positional_scores`` zero but on ``</s>``, ``alignment`` None, and
    ``token_spans``, the frames of each label (for timestamps)."""
    tokens = torch.tensor(list(labels) + [eos], dtype=torch.long)
    score = torch.as_tensor(score, dtype=torch.float)
    positional = torch.zeros(len(tokens))
    positional[-1] = score
    return {
        "tokens": tokens,
        "score": score,
        "positional_scores": positional,
        "alignment": None,
        "token_spans": token_spans,
    }

"""Best label path through emissions and transitions (decoding of ASG-trained models)."""

from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from ..token_span import TokenSpan, asg_token_spans, collapse_repeats

__all__ = ["asg_decode", "asg_token_spans", "asg_viterbi", "collapse_repeats"]


@torch.no_grad()
def asg_viterbi(
    emissions: Tensor, transitions: Tensor, input_lengths: Tensor
) -> Tuple[List[List[int]], Tensor]:
    """Arg-max over label paths of sum_t E[t, pi_t] + sum_t A[pi_t, pi_t-1].

    Args:
        emissions (Tensor): (B, T, C). transitions (Tensor): (C, C), A[next, previous].
        input_lengths (Tensor): (B,) frames per utterance (at least 1).

    Returns:
        (list, Tensor): each utterance's best path (one label per frame), and its (B,) score.
    """
    emissions, transitions = emissions.float(), transitions.float().to(emissions.device)
    batch, frames, labels = emissions.shape
    lengths = input_lengths.to(emissions.device)
    identity = torch.arange(labels, device=emissions.device).expand(batch, labels)
    score, backpointers = emissions[:, 0], []
    for t in range(1, frames):
        best, previous = (score.unsqueeze(1) + transitions).max(dim=-1)  # over the previous label
        active = (t < lengths).unsqueeze(1)
        score = torch.where(active, emissions[:, t] + best, score)
        backpointers.append(torch.where(active, previous, identity))  # past the end: stay
    final_score, label = score.max(dim=-1)
    path = [label]
    for pointers in reversed(backpointers):
        label = pointers.gather(1, label.unsqueeze(1)).squeeze(1)
        path.append(label)
    path = torch.stack(path[::-1], dim=1).tolist()
    return [row[:length] for row, length in zip(path, lengths.tolist(), strict=True)], final_score


def asg_decode(
    emissions: Tensor, transitions: Tensor, input_lengths: Tensor, replabels: Sequence[int]
) -> Tuple[List[List[TokenSpan]], Tensor]:
    """Each utterance's tokens with their frames on the Viterbi path (repeats merged, replabels
    unpacked), and the (B,) path scores."""
    paths, scores = asg_viterbi(emissions, transitions, input_lengths)
    return [asg_token_spans(path, replabels) for path in paths], scores

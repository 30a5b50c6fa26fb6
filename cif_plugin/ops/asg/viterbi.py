"""Best label path through emissions and transitions (decoding of ASG-trained models)."""

from typing import List, Sequence, Tuple

import torch
from torch import Tensor

from ..token_span import TokenSpan

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


def collapse_repeats(path: List[int]) -> List[int]:
    """Frame labels -> tokens: consecutive equal labels are one token."""
    return [label for t, label in enumerate(path) if t == 0 or label != path[t - 1]]


def asg_token_spans(path: Sequence[int], replabels: Sequence[int]) -> List[TokenSpan]:
    """Tokens of a frame path with their frames: each run of one label is a token, and a replabel
    run standing for k repetitions of the token before it gives k tokens sharing its frames evenly
    (the tokens are those of ``unpack_replabels(collapse_repeats(path))``; when k exceeds the run's
    frames some of them are empty).

    Example: path [5, 5, 7, 1, 1] with replabels [1] ("1" = one repetition) -> (5, 0, 2),
    (7, 2, 3), (7, 3, 5).
    """
    count = {replabel: k for k, replabel in enumerate(replabels, start=1)}
    spans, previous, start = [], None, 0
    for t in range(1, len(path) + 1):
        if t < len(path) and path[t] == path[start]:
            continue
        label = path[start]
        if label in count:
            if previous is not None:
                repeats = count[label]
                for k in range(repeats):
                    first = start + (t - start) * k // repeats
                    spans.append(TokenSpan(previous, first, start + (t - start) * (k + 1) // repeats))
            previous = None
        else:
            spans.append(TokenSpan(label, start, t))
            previous = label
        start = t
    return spans


def asg_decode(
    emissions: Tensor, transitions: Tensor, input_lengths: Tensor, replabels: Sequence[int]
) -> Tuple[List[List[TokenSpan]], Tensor]:
    """Each utterance's tokens with their frames on the Viterbi path (repeats merged, replabels
    unpacked), and the (B,) path scores."""
    paths, scores = asg_viterbi(emissions, transitions, input_lengths)
    return [asg_token_spans(path, replabels) for path in paths], scores

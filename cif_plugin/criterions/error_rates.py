"""Error counting shared by validation (the criteria) and scoring (scripts/score_cer.py): edit
distances over token or word sequences, and the substitution / deletion / insertion split."""

from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import editdistance
import torch
from fairseq.data.data_utils import post_process

__all__ = ["EditCounts", "align_counts", "count_errors", "edit_errors", "token_words"]


def token_words(tokens: List[int], dictionary, post_process_symbol: str) -> List[str]:
    """Words of a token sequence: each token with 'char', else fairseq's post-processing, split."""
    if post_process_symbol == "char":
        return [dictionary[token] for token in tokens]
    return post_process(dictionary.string(torch.tensor(tokens)), post_process_symbol).split()


def edit_errors(hypotheses: List[Sequence], references: List[Sequence]) -> Tuple[int, int]:
    """(total edit distance, total reference length) over utterance pairs."""
    errors = sum(editdistance.eval(hyp, ref) for hyp, ref in zip(hypotheses, references, strict=True))
    return errors, sum(len(ref) for ref in references)


def count_errors(
    hypotheses: List[List[int]], references: List[List[int]], words: Callable[[List[int]], Sequence[str]]
) -> Dict[str, int]:
    """c_* on token ids, w_* on the words ``words`` makes of them."""
    c_errors, c_total = edit_errors(hypotheses, references)
    w_errors, w_total = edit_errors([words(h) for h in hypotheses], [words(r) for r in references])
    return {"c_errors": c_errors, "c_total": c_total, "w_errors": w_errors, "w_total": w_total}


@dataclass
class EditCounts:
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0
    reference_length: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def __iadd__(self, other: "EditCounts") -> "EditCounts":
        self.substitutions += other.substitutions
        self.deletions += other.deletions
        self.insertions += other.insertions
        self.reference_length += other.reference_length
        return self


def align_counts(reference: str, hypothesis: str) -> EditCounts:
    """Minimum edits turning ``reference`` into ``hypothesis``, split into S, D and I.

    Among the alignments of minimum cost, the backtrace prefers substitutions, then deletions.
    """
    rows, cols = len(reference) + 1, len(hypothesis) + 1
    cost = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        cost[i][0] = i
    for j in range(cols):
        cost[0][j] = j
    for i in range(1, rows):
        for j in range(1, cols):
            diagonal = cost[i - 1][j - 1] + (reference[i - 1] != hypothesis[j - 1])
            cost[i][j] = min(diagonal, cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    counts = EditCounts(reference_length=len(reference))
    i, j = len(reference), len(hypothesis)
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (reference[i - 1] != hypothesis[j - 1]):
            counts.substitutions += reference[i - 1] != hypothesis[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            counts.deletions += 1
            i -= 1
        else:
            counts.insertions += 1
            j -= 1
    return counts

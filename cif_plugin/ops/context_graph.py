"""Hotword biasing: an Aho-Corasick automaton over hotword token sequences that scores hypotheses
token by token (contextual biasing as in icefall's and WeNet's context graphs; docs/hotwords.md).

Each hotword phrase p has a per-token score s_p. Scores live on the trie of all phrases: a trie node
u (a token sequence that starts some phrase) has ``token_score(u)`` = the largest s_p of the phrases
through u, and ``partial(u)`` = the sum of token scores from the root to u.

A hypothesis y_1..y_t is in the state "longest suffix of y_1..y_t that starts some phrase" (the
Aho-Corasick state), and has earned

    R(t) = partial(state_t) + sum over every occurrence of a phrase p ending at or before t of partial(p)

so each matched token earns its score as it is emitted; a phrase abandoned half-way gives its
partial bonus back (the state falls back to a shorter suffix); a completed phrase keeps its full
bonus for good, even when the state moves on. At the end of a hypothesis :meth:`ContextGraph.finalize`
takes back the bonus of an unfinished match, so a finished hypothesis has earned exactly the sum of
``partial(p)`` over the phrase occurrences in it. Overlapping phrases and phrases that are prefixes of
others all count where they occur.
"""

from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["ContextGraph"]

ROOT = 0


class ContextGraph:
    """The automaton of a hotword list over token ids (states are ints; 0 is the root).

    Args:
        phrases: (token ids, per-token score) of each hotword; duplicates keep the larger score.
        max_cached_rows (int): dense bonus rows (:meth:`bonus_rows`) kept, least recently used dropped.

    Raises:
        ValueError: an empty phrase or a score that is not positive.
    """

    def __init__(self, phrases: Sequence[Tuple[Sequence[int], float]], max_cached_rows: int = 1024):
        self._children: List[Dict[int, int]] = [{}]
        self._token_score: List[float] = [0.0]
        self._is_end: List[bool] = [False]
        for tokens, score in phrases:
            if len(tokens) == 0:
                raise ValueError("a hotword phrase has no tokens")
            if not score > 0:
                raise ValueError(f"hotword score {score} of phrase {list(tokens)}: must be > 0")
            self._insert([int(t) for t in tokens], float(score))
        self.num_phrases = sum(self._is_end)
        self._partial = [0.0] * len(self._children)
        self._fail = [ROOT] * len(self._children)
        self._completion = [0.0] * len(self._children)  # partial(p) summed over phrases ending here
        self._link()
        self._steps: Dict[Tuple[int, int], Tuple[float, int]] = {}
        self._rows: "OrderedDict[Tuple[int, int], np.ndarray]" = OrderedDict()
        self._max_cached_rows = max_cached_rows

    @property
    def num_states(self) -> int:
        return len(self._children)

    def _insert(self, tokens: List[int], score: float) -> None:
        node = ROOT
        for token in tokens:
            child = self._children[node].get(token)
            if child is None:
                child = len(self._children)
                self._children[node][token] = child
                self._children.append({})
                self._token_score.append(score)
                self._is_end.append(False)
            self._token_score[child] = max(self._token_score[child], score)
            node = child
        self._is_end[node] = True

    def _link(self) -> None:
        """Partial scores, failure links and completion bonuses, breadth first."""
        queue = list(self._children[ROOT].values())
        for node in queue:
            self._partial[node] = self._token_score[node]
        for node in queue:  # grows while it is read: breadth first
            own = self._partial[node] if self._is_end[node] else 0.0
            self._completion[node] = own + self._completion[self._fail[node]]
            for token, child in self._children[node].items():
                self._partial[child] = self._partial[node] + self._token_score[child]
                fallback = self._fail[node]
                while fallback != ROOT and token not in self._children[fallback]:
                    fallback = self._fail[fallback]
                self._fail[child] = self._children[fallback].get(token, ROOT)
                queue.append(child)

    def _goto(self, state: int, token: int) -> int:
        while state != ROOT and token not in self._children[state]:
            state = self._fail[state]
        return self._children[state].get(token, ROOT)

    def step(self, state: int, token: int) -> Tuple[float, int]:
        """(bonus, next state) of emitting ``token`` in ``state``: R(t) - R(t - 1)."""
        key = (state, token)
        found = self._steps.get(key)
        if found is None:
            target = self._goto(state, token)
            bonus = self._partial[target] + self._completion[target] - self._partial[state]
            found = self._steps[key] = (bonus, target)
        return found

    def finalize(self, state: int) -> float:
        """The bonus taken back when a hypothesis ends in ``state`` (an unfinished match)."""
        return -self._partial[state]

    def bonus_row(self, state: int, vocab_size: int) -> np.ndarray:
        """(V,) float32 bonus of every token in ``state`` (``step(state, v)[0]`` for each v)."""
        key = (state, vocab_size)
        row = self._rows.get(key)
        if row is not None:
            self._rows.move_to_end(key)
            return row
        chain, node = [], state
        while True:
            chain.append(node)
            if node == ROOT:
                break
            node = self._fail[node]
        targets: Dict[int, int] = {}
        for node in reversed(chain):  # deeper states in the failure chain take precedence
            targets.update(self._children[node])
        row = np.full(vocab_size, -self._partial[state], dtype=np.float32)
        if targets:
            gains = [self._partial[t] + self._completion[t] - self._partial[state] for t in targets.values()]
            row[list(targets)] = gains
        self._rows[key] = row
        if len(self._rows) > self._max_cached_rows:
            self._rows.popitem(last=False)
        return row

    def bonus_rows(self, states: Sequence[int], vocab_size: int) -> np.ndarray:
        """(len(states), V) float32 bonus rows of ``states``."""
        return np.stack([self.bonus_row(s, vocab_size) for s in states])

    def advance(self, states: Sequence[int], tokens: Sequence[int]) -> List[int]:
        """The next state of each (state, token) pair."""
        return [self.step(s, t)[1] for s, t in zip(states, tokens, strict=True)]

    def score(self, tokens: Sequence[int]) -> float:
        """The bonus a finished hypothesis has earned: its steps' bonuses plus :meth:`finalize`."""
        total, state = 0.0, ROOT
        for token in tokens:
            bonus, state = self.step(state, int(token))
            total += bonus
        return total + self.finalize(state)

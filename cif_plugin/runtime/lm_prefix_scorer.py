"""A fairseq LM's prefix scores for CTC prefix beam search, from its exported step graph.

``lm_step.onnx`` (one step of the LM over a key/value cache) scores what
:class:`~cif_plugin.generation.prefix_lm_scorers.FairseqLmPrefixScorer` scores with the whole LM:
log P(label | prefix) after ``</s>`` + prefix. Each prefix keeps its cache, so a prefix one label
longer than a scored one costs one step; the new prefixes of a frame run as one batch per length.
"""

from typing import Dict, Iterable, List, Tuple

import numpy as np

from .search import log_softmax

__all__ = ["OnnxLmPrefixScorer"]

Prefix = Tuple[int, ...]


class OnnxLmPrefixScorer:
    """Next-label log-probabilities of the exported fusion LM (the ``PrefixScorer`` protocol of
    ``cif_plugin.ops.ctc_prefix_search``).

    Args:
        session: the ``lm_step.onnx`` session.
        shape (dict): the manifest's ``lm`` entry (layers, heads, head_dim, max_steps).
        eos (int): index of ``</s>``, the LM's start symbol.
    """

    def __init__(self, session, shape: dict, eos: int):
        self.session, self.eos, self.max_steps = session, eos, shape["max_steps"]
        self._empty = np.zeros((shape["layers"], 2, 1, shape["heads"], 0, shape["head_dim"]), np.float32)
        self._next: Dict[Prefix, np.ndarray] = {}  # prefix -> (V,) log-probs of the next label
        self._cache: Dict[Prefix, np.ndarray] = {}  # prefix -> (L, 2, 1, H, 1 + len, d) after it

    def reset(self) -> None:
        self._next.clear()
        self._cache.clear()

    def to(self, device) -> "OnnxLmPrefixScorer":
        return self

    def prepare(self, prefixes: Iterable[Prefix]) -> None:
        """Score the next label after each prefix not yet scored (and any unscored shorter prefix
        it extends), shortest first, one batch per length."""
        missing, seen = [], set()
        for prefix in prefixes:
            prefix = tuple(prefix)
            while prefix not in self._next and prefix not in seen:
                seen.add(prefix)
                missing.append(prefix)
                if not prefix:
                    break
                prefix = prefix[:-1]
        by_length: Dict[int, List[Prefix]] = {}
        for prefix in missing:
            by_length.setdefault(len(prefix), []).append(prefix)
        for length in sorted(by_length):
            self._step(by_length[length], length)

    def _step(self, prefixes: List[Prefix], length: int) -> None:
        if length + 1 > self.max_steps:
            raise ValueError(
                f"a prefix of {length} labels is longer than the LM's {self.max_steps} positions"
            )
        if length == 0:
            tokens, cache = np.full(len(prefixes), self.eos, dtype=np.int64), self._empty
        else:
            tokens = np.array([prefix[-1] for prefix in prefixes], dtype=np.int64)
            cache = np.concatenate([self._cache[prefix[:-1]] for prefix in prefixes], axis=2)
        feeds = {"prev_tokens": tokens, "step": np.array(length, dtype=np.int64), "cache": cache}
        logits, next_cache = self.session.run(None, feeds)
        log_probs = log_softmax(logits)
        for row, prefix in enumerate(prefixes):
            self._next[prefix] = log_probs[row]
            self._cache[prefix] = next_cache[:, :, row : row + 1]

    def score(self, prefix: Prefix, label: int) -> float:
        """log P(label | prefix); ``prefix`` must have been prepared."""
        return float(self._next[prefix][label])

    def end_score(self, prefix: Prefix) -> float:
        return float(self._next[prefix][self.eos])

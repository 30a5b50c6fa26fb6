"""An n-gram language model's scores of label prefixes, for shallow fusion in CTC prefix beam
search (``cif_plugin.ops.ctc_prefix_search``); torch-free, so the ONNX runtime fuses it too.

Natural-log scores; the words are the dictionary's symbols (characters for AISHELL-1).
"""

import math
from typing import Dict, Iterable, Sequence, Tuple

__all__ = ["KenLmPrefixScorer"]

Prefix = Tuple[int, ...]
_LN_10 = math.log(10.0)


class KenLmPrefixScorer:
    """Scores of an n-gram model; its context state is kept per prefix.

    Args:
        path (str): ARPA file (or a KenLM binary made from one; only ARPA is tested).
        dictionary: the ASR dictionary, or its list of symbols; label i is the word ``dictionary[i]``.
    """

    def __init__(self, path: str, dictionary: Sequence[str]):
        try:
            import kenlm
        except ImportError as error:
            raise ImportError(f"n-gram LM {path}: the kenlm module is not installed ({error})") from None
        self._kenlm, self.dictionary = kenlm, dictionary
        self.model = kenlm.Model(str(path))
        self._states: Dict[Prefix, object] = {}
        self.reset()

    def reset(self) -> None:
        start = self._kenlm.State()
        self.model.BeginSentenceWrite(start)
        self._states = {(): start}

    def prepare(self, prefixes: Iterable[Prefix]) -> None:
        """Nothing to batch: states are made when a prefix is extended."""

    def to(self, device) -> "KenLmPrefixScorer":
        """The n-gram model runs on the CPU."""
        return self

    def _advance(self, prefix: Prefix, word: str) -> Tuple[float, object]:
        state = self._kenlm.State()
        log10_probability = self.model.BaseScore(self._states[prefix], word, state)
        return log10_probability * _LN_10, state

    def score(self, prefix: Prefix, label: int) -> float:
        """log P(label | prefix); ``prefix`` must have been scored (or be empty)."""
        value, state = self._advance(prefix, self.dictionary[label])
        self._states.setdefault(prefix + (label,), state)
        return value

    def end_score(self, prefix: Prefix) -> float:
        return self._advance(prefix, "</s>")[0]

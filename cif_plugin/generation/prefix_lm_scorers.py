"""Language-model scores of label prefixes, for shallow fusion in CTC prefix beam search.

A scorer answers, for a prefix y_1..y_n in the beam, log P(label | prefix) and log P(</s> | prefix)
in natural log. The search calls ``prepare`` with the prefixes of a frame first, so a neural LM
scores them in one batch; answers are cached per prefix until ``reset`` (one utterance).

- :class:`FairseqLmPrefixScorer`: a fairseq language model over the ASR dictionary (input ``</s>``
  + prefix, as fairseq LMs are trained);
- :class:`~cif_plugin.ops.ngram_prefix_scorer.KenLmPrefixScorer`: an n-gram model read by the
  ``kenlm`` module, whose words are the dictionary's symbols (torch-free: the ONNX runtime uses it).
"""

from typing import Dict, Iterable, Tuple

import torch

from ..ops.ngram_prefix_scorer import KenLmPrefixScorer

__all__ = ["FairseqLmPrefixScorer", "KenLmPrefixScorer"]

Prefix = Tuple[int, ...]


class FairseqLmPrefixScorer:
    """Next-label log-probabilities of a fairseq LM (``models[0]`` of its checkpoint).

    Args:
        lm: a fairseq language model whose dictionary is the ASR dictionary.
        eos (int): index of ``</s>`` (the LM's start and end symbol). pad (int): index of ``<pad>``.
    """

    def __init__(self, lm, eos: int, pad: int):
        self.lm, self.eos, self.pad = lm.eval(), eos, pad
        self._next: Dict[Prefix, list] = {}

    def reset(self) -> None:
        self._next.clear()

    def to(self, device) -> "FairseqLmPrefixScorer":
        self.lm.to(device)
        return self

    @torch.no_grad()
    def prepare(self, prefixes: Iterable[Prefix]) -> None:
        """Score the next label after each prefix not yet cached, in one right-padded batch."""
        missing = [prefix for prefix in prefixes if prefix not in self._next]
        if not missing:
            return
        device = next(self.lm.parameters()).device
        tokens = torch.full((len(missing), 1 + max(map(len, missing))), self.pad, dtype=torch.long)
        for row, prefix in enumerate(missing):
            tokens[row, : 1 + len(prefix)] = torch.tensor((self.eos, *prefix))
        logits, _ = self.lm(tokens.to(device))
        last = torch.tensor([len(prefix) for prefix in missing], device=device)
        log_probs = torch.log_softmax(logits[torch.arange(len(missing), device=device), last].float(), dim=-1)
        for prefix, row in zip(missing, log_probs.cpu().tolist(), strict=True):
            self._next[prefix] = row

    def score(self, prefix: Prefix, label: int) -> float:
        """log P(label | prefix); ``prefix`` must have been prepared."""
        return self._next[prefix][label]

    def end_score(self, prefix: Prefix) -> float:
        return self._next[prefix][self.eos]

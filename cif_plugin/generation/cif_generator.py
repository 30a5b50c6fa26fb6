"""Decoding of CIF models for fairseq-generate and the inference library (docs/model.md, "Decoding").

Each utterance is decoded for exactly as many steps as its CIF fired (the last fire stands for
``</s>``), and its output is cut after the first ``</s>`` (the dictionary's eos index). Modes:

- ``greedy`` (``--beam 1``): arg-max at every step;
- ``beam``: beam search batched over utterances and beams; a hypothesis
  that emitted ``</s>`` keeps its score and extends with ``</s>`` at no cost, so finished and
  unfinished hypotheses compete on equal terms (the reference had no ``</s>`` handling);
- ``nar``: one parallel pass of a non-autoregressive decoder (chosen automatically for NAR models).

With a hotword ``context_graph`` (``hotwords.py``), greedy and beam search rank tokens by their
score plus the graph's bonus (contextual biasing, docs/hotwords.md); the final beams are ranked with
the bonus of unfinished matches taken back. ``positional_scores`` stay the model's (and LM's)
log-probabilities; ``score`` adds the hypothesis's ``context_bonus``.

``<pad>`` and ``<s>`` are never emitted (neither is ever a target). With a language model
(``--lm-path``, a fairseq LM over the same dictionary) and ``--lm-weight`` w, greedy and beam search
maximise log p_ASR + w log p_LM at every step (shallow fusion); the LM decodes step by step inside
the same beam. Both run on preallocated key/value caches (``cached_decoding``).

Every hypothesis holds what fairseq-generate reads (``tokens``, ``score``, ``positional_scores``,
``alignment``) plus ``fire_frames``, the encoder frame at which the CIF fired each token, and
``cif_weights``, the utterance's CIF weight per encoder frame (for timestamps and plots). The
``alignment`` is the hard alignment as (encoder frame, token index) pairs.
"""

import logging
from typing import Dict, List, Optional

import torch
from torch import Tensor

from ..modules.cif import DECODING_TAIL_THRESHOLD
from ..ops.context_graph import ContextGraph
from .cached_decoding import CifDecoderSteps
from .cif_search import CifSearch

__all__ = ["CifGenerator"]

logger = logging.getLogger(__name__)

Hypothesis = Dict[str, Tensor]


class CifGenerator:
    """Decodes a batch with one CIF model.

    Args:
        model: a trained ``S2TCifTransformerModel``.
        tgt_dict: the target dictionary.
        beam (int): beam size; 1 decodes greedily.
        nbest (int): hypotheses returned per utterance (at most ``beam``).
        tail_threshold (float): CIF tail firing threshold at decoding time (0.4 as published).
        lm: a fairseq language model over the same dictionary for shallow fusion, or None.
        lm_weight (float): weight of the LM log-probabilities.
        context_graph (ContextGraph, optional): hotwords to bias the search towards.
    """

    def __init__(
        self,
        model,
        tgt_dict,
        beam: int = 1,
        nbest: int = 1,
        tail_threshold: float = DECODING_TAIL_THRESHOLD,
        lm=None,
        lm_weight: float = 0.0,
        context_graph: Optional[ContextGraph] = None,
    ):
        if nbest > beam:
            raise ValueError(f"--nbest {nbest} cannot exceed --beam {beam}")
        self.model = model
        self.tgt_dict = tgt_dict
        self.eos = tgt_dict.eos()
        # Never targets: <pad> would be read as padding when the decoder sees it again, <s> is the CTC blank.
        self.banned = [tgt_dict.pad(), tgt_dict.bos()]
        self._banned_index: Dict[torch.device, Tensor] = {}
        self.symbols_to_strip_from_output = {tgt_dict.eos()}
        self.beam, self.nbest, self.tail_threshold = beam, nbest, tail_threshold
        self.nar = not hasattr(model.decoder, "embed_tokens")
        self.lm = lm.eval() if lm is not None and lm_weight != 0 else None
        self.lm_weight = lm_weight
        if self.lm is not None and self.nar:
            raise ValueError("LM fusion needs an autoregressive decoder; this model's decoder is NAR")
        self.context_graph = context_graph
        fusion = f", LM weight {lm_weight}" if self.lm is not None else ""
        if context_graph is not None:
            fusion += f", {context_graph.num_phrases} hotwords"
        settings = f"mode {self.mode}, beam {beam}, nbest {nbest}, tail threshold {tail_threshold}{fusion}"
        logger.info(f"CIF decoding: {settings}")

    @property
    def mode(self) -> str:
        """``nar`` (one parallel pass), ``greedy`` (beam 1) or ``beam``."""
        return "nar" if self.nar else ("greedy" if self.beam == 1 else "beam")

    @property
    def context_graph(self) -> Optional[ContextGraph]:
        """The hotwords the search is biased towards (None: no biasing)."""
        return self._context_graph

    @context_graph.setter
    def context_graph(self, graph: Optional[ContextGraph]) -> None:
        if graph is not None and self.nar:
            raise ValueError("hotword biasing needs an autoregressive decoder; this model's decoder is NAR")
        self._context_graph = graph

    @torch.no_grad()
    def generate(
        self, models, sample, prefix_tokens=None, constraints=None, **unused
    ) -> List[List[Hypothesis]]:
        """fairseq's generator interface: one list of hypotheses (best first) per utterance."""
        if len(models) != 1:
            raise ValueError("CIF decoding takes a single model (average checkpoints instead of ensembling)")
        if prefix_tokens is not None or constraints is not None:
            raise ValueError("CIF decoding supports neither --prefix-size nor constraints")
        if self.model.training:  # eval() walks every module (about 1 ms for the paper model)
            self.model.eval()
        if self.lm is not None:
            self.lm.to(next(self.model.parameters()).device)
        net_input = sample["net_input"]
        encoder = self.model.forward_encoder(net_input["src_tokens"], net_input["src_lengths"])
        cif = self.model.forward_cif(encoder, tail_threshold=self.tail_threshold)
        tokens, step_scores = self._nar(cif) if self.mode == "nar" else self.search(cif)
        hypotheses = self._hypotheses(tokens, step_scores, cif["fire_counts"], cif["fire_frames"])
        frames = encoder["encoder_lengths"].tolist()
        for b, utterance in enumerate(hypotheses):
            for hypothesis in utterance:
                hypothesis["cif_weights"] = cif["alpha"][b, : frames[b]].cpu()
        return hypotheses

    def _log_probs(self, logits: Tensor) -> Tensor:
        log_probs = torch.log_softmax(logits.float(), dim=-1)
        banned = self._banned_index.get(log_probs.device)
        if banned is None:
            banned = self._banned_index[log_probs.device] = torch.tensor(self.banned, device=log_probs.device)
        return log_probs.index_fill_(-1, banned, float("-inf"))

    def search(self, cif: Dict[str, Tensor]) -> (Tensor, Tensor):
        """Greedy or beam search over the CIF output of a batch (``forward_cif``): (B, K, N) tokens
        and per-step log-probs of the K best hypotheses, best first (K = 1 for greedy)."""
        search = CifSearch(self, cif["cif_out"], cif.get("fire_counts"))
        search.advance()
        return search.result()

    def step_log_probs(self, decoder: CifDecoderSteps, lm, prev_tokens: Tensor, step: int) -> Tensor:
        """(rows, V) log-probs of the token at ``step``, fused with the LM's when there is one."""
        log_probs = self._log_probs(decoder.logits(prev_tokens, step))
        if lm is not None:
            lm_log_probs = torch.log_softmax(lm.logits(prev_tokens, step).float(), dim=-1)
            log_probs = log_probs + self.lm_weight * lm_log_probs
        return log_probs

    def _nar(self, cif) -> (Tensor, Tensor):
        """(B, 1, N) tokens and log-probs of the arg-max at every CIF position."""
        log_probs = self._log_probs(self.model.decoder(None, encoder_out=cif)[0])
        scores, tokens = log_probs.max(dim=-1)
        return tokens.unsqueeze(1), scores.unsqueeze(1)

    def freeze(self, table: Tensor, frozen: Tensor) -> None:
        """Rows of finished hypotheses extend with ``</s>`` at no cost, and with nothing else."""
        table[frozen] = float("-inf")
        table[frozen, self.eos] = 0.0

    def _hypotheses(
        self, tokens: Tensor, step_scores: Tensor, fire_counts: Tensor, fire_frames: Tensor
    ) -> List[List[Hypothesis]]:
        """Cut each hypothesis to its utterance's steps and after its first ``</s>``."""
        results = []
        for b in range(tokens.size(0)):
            count = int(fire_counts[b])
            hypotheses = []
            for k in range(min(self.nbest, tokens.size(1))):
                sequence, scores = tokens[b, k, :count], step_scores[b, k, :count]
                eos_positions = (sequence == self.eos).nonzero()
                length = int(eos_positions[0]) + 1 if len(eos_positions) else count
                frames = fire_frames[b, :length]
                hypothesis = {
                    "tokens": sequence[:length].cpu(),
                    "score": scores[:length].sum().cpu(),
                    "positional_scores": scores[:length].cpu(),
                    "alignment": torch.stack([frames, torch.arange(length, device=frames.device)], 1).cpu(),
                    "fire_frames": frames.cpu(),
                }
                if self.context_graph is not None:
                    hypothesis["context_bonus"] = self.context_graph.score(sequence[:length].tolist())
                    hypothesis["score"] = hypothesis["score"] + hypothesis["context_bonus"]
                hypotheses.append(hypothesis)
            results.append(hypotheses)
        return results

    def max_positions(self) -> Optional[int]:
        return None

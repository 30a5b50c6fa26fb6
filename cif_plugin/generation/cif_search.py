"""Greedy and beam search over CIF steps, one step at a time (docs/model.md, "Decoding").

The one search :class:`~cif_plugin.generation.cif_generator.CifGenerator` runs: offline it is given
every CIF vector at once; a stream (``cif_plugin.inference.streaming``) extends it with each new fire
and advances it as far as the vectors go, so a token is decoded the moment its CIF fires (the
decoder has no cross-attention: step i reads the CIF vectors up to i and the previous tokens only).

Beam search batches utterances and beams: a hypothesis that emitted ``</s>`` keeps its score and
extends with ``</s>`` at no cost, so finished and unfinished hypotheses compete on equal terms; an
utterance whose CIF fired fewer times than the batch's longest is frozen the same way after its
last step. With a hotword graph the bonus ranks candidates (the model's log-probabilities are kept
apart for the scores) and the final beams are ranked with unfinished matches taken back.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

from .cached_decoding import CifDecoderSteps, LanguageModelSteps

__all__ = ["CifSearch"]


class CifSearch:
    """The search state of a batch: decoder and LM caches, hypotheses, back-pointers.

    Args:
        generator (CifGenerator): gives the model, beam size, LM, hotword graph and banned symbols.
        cif_out (Tensor): (B, N, C) CIF vectors known so far (N may be 0 for a stream).
        fire_counts (Tensor, optional): (B,) steps of each utterance; None: every row decodes every
            step it is given (a stream).
    """

    def __init__(self, generator, cif_out: Tensor, fire_counts: Optional[Tensor] = None):
        self.generator = generator
        self.batch_size = cif_out.size(0)
        self.beam = generator.beam
        self.device = cif_out.device
        self.active_steps = None if fire_counts is None else fire_counts.repeat_interleave(self.beam)
        self.decoder = CifDecoderSteps(generator.model.decoder, cif_out)  # one row per utterance at first
        lm = generator.lm
        rows, steps = self.batch_size, max(cif_out.size(1), 1)
        self.lm = LanguageModelSteps(lm, rows, steps, cif_out) if lm is not None else None
        self.step = 0
        self.prev_tokens = torch.full((rows,), generator.eos, dtype=torch.long, device=self.device)
        self.graph = generator.context_graph
        self.states = [0] * rows  # hotword graph states per row
        self.chosen: List[Tensor] = []  # per step: (rows,) tokens, their log-probs, their origin rows
        self.chosen_scores: List[Tensor] = []
        self.origins: List[Tensor] = []
        if self.beam > 1:
            self.scores = torch.full((self.batch_size, self.beam), float("-inf"), device=self.device)
            self.scores[:, 0] = 0.0  # all beams start identical: keep one
            self.finished = torch.zeros(rows * self.beam, dtype=torch.bool, device=self.device)
            self.beam_offset = (torch.arange(self.batch_size, device=self.device) * self.beam).unsqueeze(1)

    def extend(self, cif_out: Tensor) -> None:
        """Append CIF vectors (B, n, C) of new fires (a stream; batch 1 for beam search)."""
        self.decoder.extend(cif_out)
        if self.lm is not None:
            self.lm.reserve(self.decoder.num_steps)

    def advance(self) -> int:
        """Decode every step whose CIF vector is known; returns the number of steps taken."""
        taken = 0
        while self.step < self.decoder.num_steps:
            if self.beam == 1:
                self._greedy_step()
            else:
                self._beam_step()
            self.step += 1
            taken += 1
        return taken

    def _greedy_step(self) -> None:
        log_probs = self.generator.step_log_probs(self.decoder, self.lm, self.prev_tokens, self.step)
        if self.graph is None:
            scores, self.prev_tokens = log_probs.max(dim=-1)
        else:
            self.prev_tokens = (log_probs + self._bonus_rows(log_probs.size(1))).argmax(dim=-1)
            scores = log_probs.gather(1, self.prev_tokens.unsqueeze(1)).squeeze(1)
            self.states = self.graph.advance(self.states, self.prev_tokens.tolist())
        self.chosen.append(self.prev_tokens)
        self.chosen_scores.append(scores)

    def _beam_step(self) -> None:
        generator, beam, batch_size, device = self.generator, self.beam, self.batch_size, self.device
        step = self.step
        if step == 0:  # the K beams of an utterance start identical: score one, then copy it
            log_probs = generator.step_log_probs(self.decoder, self.lm, self.prev_tokens, step)
            log_probs = log_probs.repeat_interleave(beam, dim=0)
            spread = torch.arange(batch_size, device=device).repeat_interleave(beam)
            self._reorder(spread)
            self.states = [self.states[s] for s in spread.tolist()]
        else:
            log_probs = generator.step_log_probs(self.decoder, self.lm, self.prev_tokens, step)
        frozen = self.finished
        if self.active_steps is not None:
            frozen = frozen | (step >= self.active_steps)
        generator.freeze(log_probs, frozen)
        search_scores = log_probs
        if self.graph is not None:  # the bonus ranks candidates; the model's log-probs are kept apart
            search_scores = log_probs + self._bonus_rows(log_probs.size(1))
            generator.freeze(search_scores, frozen)
        candidates = (self.scores.view(-1, 1) + search_scores).view(batch_size, -1)  # (B, K*V)
        self.scores, best = candidates.topk(beam, dim=1)
        vocab = log_probs.size(1)
        origin = (best // vocab + self.beam_offset).view(-1)
        self.prev_tokens = (best % vocab).view(-1)
        self.chosen.append(self.prev_tokens)
        self.chosen_scores.append(log_probs[origin, self.prev_tokens])
        self.origins.append(origin)
        self.finished = self.finished[origin] | (self.prev_tokens == generator.eos)
        if self.graph is not None:
            continued = [self.states[o] for o in origin.tolist()]
            self.states = self.graph.advance(continued, self.prev_tokens.tolist())
        self._reorder(origin)

    def _bonus_rows(self, vocab_size: int) -> Tensor:
        """(rows, V) hotword bonus of every row's graph state."""
        return torch.from_numpy(self.graph.bonus_rows(self.states, vocab_size)).to(self.device)

    def _reorder(self, origin: Tensor) -> None:
        self.decoder.reorder(origin)
        if self.lm is not None:
            self.lm.reorder(origin)

    def result(self, final: bool = True) -> Tuple[Tensor, Tensor]:
        """(B, K, N) tokens and per-step log-probs of the K best hypotheses so far, best first (K = 1
        for greedy). ``final``: rank beams with the bonus of unfinished hotword matches taken back."""
        steps, device = self.step, self.device
        if self.beam == 1:
            if not steps:
                empty = torch.zeros(self.batch_size, 1, 0, device=device)
                return empty.long(), empty
            tokens = torch.stack(self.chosen, dim=1).unsqueeze(1)
            return tokens, torch.stack(self.chosen_scores, dim=1).float().unsqueeze(1)
        rows = self.batch_size * self.beam
        tokens = torch.full((rows, steps), self.generator.eos, dtype=torch.long, device=device)
        step_scores = torch.zeros(rows, steps, device=device)
        row = torch.arange(rows, device=device)
        if steps and self.graph is not None and final:
            bonus = torch.tensor([self.graph.finalize(s) for s in self.states], device=device)
            ranked = (self.scores.view(-1) + bonus).view(self.batch_size, self.beam)
            row = (ranked.argsort(dim=1, descending=True, stable=True) + self.beam_offset).view(-1)
        for step in reversed(range(steps)):
            tokens[:, step], step_scores[:, step] = self.chosen[step][row], self.chosen_scores[step][row]
            row = self.origins[step][row]
        shape = (self.batch_size, self.beam, steps)
        return tokens.view(shape), step_scores.view(shape)

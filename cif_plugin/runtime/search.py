"""The searches of the ONNX runtime, in numpy over onnxruntime sessions (docs/onnx.md).

The same rules as the PyTorch searches they mirror, so both give the same tokens:

- CIF: :class:`~cif_plugin.generation.cif_search.CifSearch`: greedy, or beam search in which a
  hypothesis that emitted ``</s>`` extends with ``</s>`` at no cost; one step per CIF fire,
  ``<pad>`` and ``<s>`` never emitted, a fusion LM's log-probabilities added with its weight, and a
  hotword graph's bonus ranking the candidates (the model's log-probabilities kept for the scores);
- CTC: best path (``cif_plugin.ops.ctc.greedy``), or prefix beam search (the same code) with an
  n-gram LM fused, its spans by forced alignment as ``cif_plugin.ops.ctc.alignment`` gives them;
- ASG: Viterbi over emissions and transitions (``cif_plugin.ops.asg.viterbi``).
"""

from typing import List, Optional, Tuple

import numpy as np

from ..ops.ctc_prefix_search import ctc_prefix_beam_search
from ..ops.token_span import TokenSpan, asg_token_spans, merge_frame_labels

__all__ = [
    "CifStepSearch",
    "asg_best_path",
    "ctc_best_path",
    "ctc_forced_spans",
    "ctc_prefix_best",
    "log_softmax",
]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """float32 log-softmax over the last axis."""
    shifted = logits.astype(np.float32) - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _top_indices(values: np.ndarray, count: int) -> np.ndarray:
    """The indices of the ``count`` largest of the 1-D ``values``, largest first, ties in index
    order: ``np.argsort(-values, kind="stable")[:count]`` without sorting all of ``values``."""
    if count >= values.size:
        return np.argsort(-values, kind="stable")
    kth = np.partition(values, values.size - count)[values.size - count]  # the count-th largest
    above = np.flatnonzero(values > kth)
    tied = np.flatnonzero(values == kth)[: count - above.size]
    top = np.concatenate([above, tied])
    return top[np.lexsort((top, -values[top]))]


def _top_candidates(candidates: np.ndarray, count: int) -> np.ndarray:
    """:func:`_top_indices` of the flattened (rows, V) ``candidates``, searching only those at least
    the smallest row maximum: ``rows`` >= ``count`` candidates reach it (one per row), so every one
    of the ``count`` largest does, ties included. At beam 10 over 4,234 symbols that leaves tens of
    candidates instead of 42,340."""
    flat = candidates.reshape(-1)
    if candidates.shape[0] < count:
        return _top_indices(flat, count)
    bound = candidates.max(axis=1).min()
    if bound == -np.inf:  # a row with no finite candidate: no bound
        return _top_indices(flat, count)
    kept = np.flatnonzero(flat >= bound)  # in index order, so ties stay in index order
    return kept[_top_indices(flat[kept], count)]


class _CachedSteps:
    """A step graph (decoder or LM) and the key/value cache of the rows it decodes."""

    def __init__(self, session, shape: dict):
        self.session = session
        self.empty_cache = np.zeros((shape["layers"], 2, 1, shape["heads"], 0, shape["head_dim"]), np.float32)
        self.max_steps = shape["max_steps"]
        self.cache = self.empty_cache

    def start(self) -> None:
        self.cache = self.empty_cache

    def log_probs(self, feeds: dict) -> np.ndarray:
        logits, self.cache = self.session.run(None, {**feeds, "cache": self.cache})
        return log_softmax(logits)

    def spread(self, rows: int) -> None:
        """Copy the one row decoded so far to ``rows`` rows (the beams start identical)."""
        self.cache = np.repeat(self.cache, rows, axis=2)

    def reorder(self, origin: np.ndarray) -> None:
        self.cache = np.ascontiguousarray(self.cache[:, :, origin])


class CifStepSearch:
    """Greedy (beam 1) or beam search of one utterance over the decoder-step graph, with the LM-step
    graph's log-probabilities added ``lm_weight`` times when there is one (shallow fusion, as
    ``CifGenerator.step_log_probs`` does).

    Args:
        session: the ``decoder_step.onnx`` session.
        decoder (dict): the manifest's ``decoder`` entry (layers, heads, head_dim, max_steps).
        eos (int), banned (list): ``</s>`` and the indices never emitted (``<pad>``, ``<s>``).
        beam (int): beam size.
        lm_session, lm (dict), lm_weight (float): the ``lm_step.onnx`` session, the manifest's
            ``lm`` entry and the fusion weight; no LM without a session or with weight 0.
    """

    def __init__(
        self,
        session,
        decoder: dict,
        eos: int,
        banned: List[int],
        beam: int = 1,
        lm_session=None,
        lm: Optional[dict] = None,
        lm_weight: float = 0.0,
    ):
        self.eos, self.banned, self.beam = eos, banned, beam
        self.decoder = _CachedSteps(session, decoder)
        self.lm = _CachedSteps(lm_session, lm) if lm_session is not None and lm_weight != 0 else None
        self.lm_weight = lm_weight
        self.graph = None  # a hotword ContextGraph (``OnnxRecognizer.set_hotwords``)

    def _models(self):
        return [self.decoder] + ([self.lm] if self.lm is not None else [])

    def _step(self, prev_tokens, prev_cif, cif, step):
        log_probs = self.decoder.log_probs(
            {"prev_tokens": prev_tokens, "prev_cif": prev_cif, "cif": cif, "step": np.array(step)}
        )
        log_probs[:, self.banned] = -np.inf
        if self.lm is not None:
            lm_log_probs = self.lm.log_probs({"prev_tokens": prev_tokens, "step": np.array(step)})
            log_probs = log_probs + np.float32(self.lm_weight) * lm_log_probs
        return log_probs

    def __call__(self, cif_out: np.ndarray) -> Tuple[List[int], List[float]]:
        """(N, C) CIF vectors of an utterance -> its tokens (cut after the first ``</s>``) and
        their log-probabilities."""
        steps = len(cif_out)
        for model, what in zip(self._models(), ("decoder", "language model"), strict=False):
            if steps > model.max_steps:
                raise ValueError(f"{steps} CIF fires: the {what}'s positions stop at {model.max_steps}")
            model.start()
        tokens, scores = self._greedy(cif_out) if self.beam == 1 else self._beam(cif_out)
        if self.eos in tokens:
            length = tokens.index(self.eos) + 1
            tokens, scores = tokens[:length], scores[:length]
        return tokens, scores

    def _greedy(self, cif_out):
        prev, prev_cif = np.array([self.eos]), np.zeros((1, cif_out.shape[1]), dtype=np.float32)
        tokens, scores, state = [], [], 0
        for step in range(len(cif_out)):
            log_probs = self._step(prev, prev_cif, cif_out[step : step + 1], step)
            if self.graph is None:
                token = int(log_probs[0].argmax())
            else:  # the bonus picks the token; its score stays the model's
                token = int((log_probs[0] + self.graph.bonus_row(state, log_probs.shape[1])).argmax())
                state = self.graph.step(state, token)[1]
            tokens.append(token)
            scores.append(float(log_probs[0, token]))
            prev, prev_cif = np.array([token]), cif_out[step : step + 1]
        return tokens, scores

    def _beam(self, cif_out):
        beam, eos = self.beam, self.eos
        prev, prev_cif = np.array([eos]), np.zeros((1, cif_out.shape[1]), dtype=np.float32)
        scores = np.full(beam, -np.inf, dtype=np.float32)
        scores[0] = 0.0  # the beams start identical: keep one
        finished = np.zeros(beam, dtype=bool)
        chosen, chosen_scores, origins, states = [], [], [], [0] * beam
        for step in range(len(cif_out)):
            current = np.repeat(cif_out[step : step + 1], len(prev), axis=0)
            log_probs = self._step(prev, prev_cif, current, step)
            if step == 0:  # score one row, then copy it to every beam
                log_probs = np.repeat(log_probs, beam, axis=0)
                for model in self._models():
                    model.spread(beam)
            log_probs[finished] = -np.inf
            log_probs[finished, eos] = 0.0
            search_scores = log_probs
            if self.graph is not None:  # the bonus ranks candidates; the model's log-probs are kept
                search_scores = log_probs + self.graph.bonus_rows(states, log_probs.shape[1])
                search_scores[finished] = -np.inf
                search_scores[finished, eos] = 0.0
            candidates = scores[:, None] + search_scores
            best = _top_candidates(candidates, beam)
            vocab = log_probs.shape[1]
            origin, tokens = best // vocab, best % vocab
            scores = candidates.reshape(-1)[best]
            chosen.append(tokens)
            chosen_scores.append(log_probs[origin, tokens])
            origins.append(origin)
            finished = finished[origin] | (tokens == eos)
            if self.graph is not None:
                states = [self.graph.step(states[o], int(t))[1] for o, t in zip(origin, tokens, strict=True)]
            for model in self._models():
                model.reorder(origin)
            prev, prev_cif = tokens, np.repeat(cif_out[step : step + 1], beam, axis=0)
        row, best_tokens, best_scores = 0, [], []
        if chosen and self.graph is not None:  # rank with unfinished matches taken back
            ranked = scores + np.array([self.graph.finalize(s) for s in states], dtype=np.float32)
            row = int(np.argsort(-ranked, kind="stable")[0])
        for step in reversed(range(len(chosen))):
            best_tokens.append(int(chosen[step][row]))
            best_scores.append(float(chosen_scores[step][row]))
            row = origins[step][row]
        return best_tokens[::-1], best_scores[::-1]


def ctc_best_path(log_probs: np.ndarray, blank: int) -> Tuple[List[TokenSpan], float]:
    """(T, V) log-probabilities of an utterance -> its best path's token spans and log-probability."""
    return merge_frame_labels(log_probs.argmax(axis=-1).tolist(), blank), float(log_probs.max(axis=-1).sum())


def ctc_prefix_best(
    log_probs: np.ndarray,
    blank: int,
    beam: int,
    scorer=None,
    lm_weight: float = 0.0,
    token_bonus: float = 0.0,
    context=None,
) -> Tuple[List[TokenSpan], float]:
    """(T, V) log-probabilities -> the best prefix of CTC prefix beam search (the PyTorch
    recogniser's own search, ``cif_plugin.ops.ctc_prefix_search``, with an n-gram ``scorer`` fused),
    its token spans by forced alignment, and its score."""
    labels, score = ctc_prefix_beam_search(log_probs, blank, beam, scorer, lm_weight, token_bonus, context)[0]
    return (ctc_forced_spans(log_probs, labels, blank) if labels else []), score


def ctc_forced_spans(log_probs: np.ndarray, labels, blank: int) -> List[TokenSpan]:
    """The span of every label on the most likely CTC path that spells ``labels`` (Viterbi over
    the blank-interleaved labels, float32 sums, only the states that can still be reached and still
    reach the end): torchaudio's ``forced_align``, the PyTorch recogniser's aligner, as its source
    describes it. Ties go to staying, then to advancing one state, and to ending on the last blank.
    (On integer log-probabilities, all ties, torchaudio 2.11 returned worse paths than this;
    tests/test_onnx_export.py checks these against brute force instead.)"""
    labels = list(labels)
    count, repeats = len(labels), sum(a == b for a, b in zip(labels, labels[1:], strict=False))
    frames, needed = len(log_probs), len(labels) + repeats  # a repeated label needs a blank between
    if not labels or frames < needed:
        raise ValueError(f"{frames} frames cannot hold {count} labels ({needed} frames needed)")
    states = np.full(2 * count + 1, blank)
    states[1::2] = labels
    may_skip = np.zeros(len(states), dtype=bool)  # skip the blank before a label unlike the previous one
    may_skip[3::2] = states[3::2] != states[1:-2:2]
    log_probs = np.asarray(log_probs, dtype=np.float32)[:, states]  # (T, S)
    start, end = (0 if frames > needed else 1), 2
    score = np.full(len(states), -np.inf, dtype=np.float32)
    score[start:end] = log_probs[0, start:end]
    moves = np.zeros(log_probs.shape, dtype=np.int8)  # how many states each best path advanced
    one, two = np.full_like(score, -np.inf), np.full_like(score, -np.inf)  # from one and two states back
    for t in range(1, frames):
        if frames - t <= needed:  # the first state that can still reach the end in time
            start += 2 if start % 2 == 1 and labels[start // 2] != labels[start // 2 + 1] else 1
        if t <= needed:  # one past the last state reachable by now
            end += 2 if end % 2 == 0 and end < 2 * count and labels[end // 2 - 1] != labels[end // 2] else 1
        one[1:] = score[:-1]
        two[2:] = np.where(may_skip[2:], score[:-2], -np.inf)
        skip = (two > one) & (two > score)
        advance = ~skip & (one > score)
        moves[t] = np.where(skip, 2, np.where(advance, 1, 0))
        best = np.where(skip, two, np.where(advance, one, score)) + log_probs[t]
        score = np.full_like(score, -np.inf)
        score[start:end] = best[start:end]
    state = len(states) - 1 if score[-1] > score[-2] else len(states) - 2
    path = []
    for t in range(frames - 1, -1, -1):
        path.append(int(states[state]))
        state -= moves[t, state]
    return merge_frame_labels(path[::-1], blank)


def asg_best_path(emissions: np.ndarray, transitions: np.ndarray, replabels) -> Tuple[List[TokenSpan], float]:
    """(T, V) emissions, (V, V) transitions A[next, previous] -> the Viterbi path's token spans (repeats
    merged, replabels unpacked) and its score."""
    score, backpointers = emissions[0].astype(np.float32), []
    for t in range(1, len(emissions)):
        candidates = score[None, :] + transitions  # (next, previous)
        previous = candidates.argmax(axis=1)
        backpointers.append(previous)
        score = emissions[t] + candidates[np.arange(len(previous)), previous]
    label = int(score.argmax())
    path = [label]
    for pointers in reversed(backpointers):
        label = int(pointers[label])
        path.append(label)
    return asg_token_spans(path[::-1], replabels), float(score.max())

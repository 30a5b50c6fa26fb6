"""The hotword context graph against a brute-force scorer, and hotword lists read and encoded."""

import logging
import random
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pytest
from fairseq.data import Dictionary

from cif_plugin.ops.context_graph import ContextGraph
from cif_plugin.ops.hotwords import build_context_graph, read_hotwords

Phrase = Tuple[Tuple[int, ...], float]


def brute_force_earned(phrases: Sequence[Phrase], sequence: Sequence[int]) -> Tuple[List[float], float]:
    """R(t) for t = 1..len(sequence) and the bonus of the finished sequence, from the definitions of
    docs/hotwords.md: every suffix and every phrase occurrence checked directly, no automaton."""
    token_score: Dict[Tuple[int, ...], float] = {}
    for tokens, score in phrases:
        for k in range(1, len(tokens) + 1):
            token_score[tokens[:k]] = max(token_score.get(tokens[:k], 0.0), score)

    def partial(u):
        return sum(token_score[u[:k]] for k in range(1, len(u) + 1))

    ends = {tokens for tokens, _ in phrases}
    running, completed = [], 0.0
    for t in range(1, len(sequence) + 1):
        prefix = tuple(sequence[:t])
        completed += sum(partial(p) for p in ends if len(p) <= t and prefix[t - len(p) :] == p)
        state = max(
            (prefix[t - n :] for n in range(t + 1) if prefix[t - n :] in token_score or n == 0), key=len
        )
        running.append(partial(state) + completed)
    return running, completed


def _random_phrases(rng: random.Random) -> List[Phrase]:
    alphabet = [1, 2, 3, 4]
    phrases = []
    for _ in range(rng.randint(1, 6)):
        tokens = tuple(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        phrases.append((tokens, rng.choice([0.5, 1.0, 2.0, 3.5])))
    if rng.random() < 0.5:  # a phrase that is a prefix of another, with another score
        tokens, _ = rng.choice(phrases)
        phrases.append((tokens[: rng.randint(1, len(tokens))], rng.choice([0.25, 4.0])))
    return phrases


def test_step_bonuses_add_up_to_the_brute_force_running_bonus():
    rng = random.Random(0)
    for _ in range(400):
        phrases = _random_phrases(rng)
        graph = ContextGraph(phrases)
        sequence = [rng.choice([0, 1, 2, 3, 4, 5]) for _ in range(rng.randint(0, 12))]
        running, final = brute_force_earned(phrases, sequence)
        total, state = 0.0, 0
        for t, token in enumerate(sequence):
            bonus, state = graph.step(state, token)
            total += bonus
            assert total == pytest.approx(running[t], abs=1e-9), (phrases, sequence, t)
        assert total + graph.finalize(state) == pytest.approx(final, abs=1e-9), (phrases, sequence)
        assert graph.score(sequence) == pytest.approx(final, abs=1e-9)


def test_overlapping_and_nested_phrases_by_hand():
    # 北京 (1, 2) and 北京大学 (1, 2, 3, 4) at 1.0 per token, 京大 (2, 3) at 2.0 per token.
    graph = ContextGraph([((1, 2), 1.0), ((1, 2, 3, 4), 1.0), ((2, 3), 2.0)])
    assert graph.score([1, 2]) == 2.0  # 北京 once
    assert graph.score([1, 2, 3, 4]) == 2.0 + 4.0 + 4.0  # 北京, 北京大学 and 京大 all occur
    assert graph.score([1, 2, 3]) == 2.0 + 4.0  # 北京 and 京大; 北京大 unfinished: taken back
    assert graph.score([1, 5, 2]) == 0.0  # abandoned
    bonus, state = graph.step(0, 1)
    assert bonus == 1.0
    bonus, state = graph.step(state, 2)
    assert bonus == 1.0 + 2.0  # the second token of 北京 and its completion
    bonus, _ = graph.step(state, 5)
    assert bonus == -2.0  # the partial 北京 taken back, its completion kept


def test_bonus_rows_equal_single_steps_for_every_token():
    rng = random.Random(1)
    vocab = 7
    for _ in range(50):
        graph = ContextGraph(_random_phrases(rng), max_cached_rows=3)
        for state in range(graph.num_states):
            expected = np.array([graph.step(state, v)[0] for v in range(vocab)], dtype=np.float32)
            np.testing.assert_array_equal(graph.bonus_row(state, vocab), expected)
            assert graph.bonus_row(state, vocab).dtype == np.float32
        states = [rng.randrange(graph.num_states) for _ in range(5)]
        np.testing.assert_array_equal(
            graph.bonus_rows(states, vocab), np.stack([graph.bonus_row(s, vocab) for s in states])
        )
        tokens = [rng.randrange(vocab) for _ in states]
        expected = [graph.step(s, t)[1] for s, t in zip(states, tokens, strict=True)]
        assert graph.advance(states, tokens) == expected


def test_bad_phrases_are_refused():
    with pytest.raises(ValueError, match="no tokens"):
        ContextGraph([((), 1.0)])
    with pytest.raises(ValueError, match="must be > 0"):
        ContextGraph([((1,), 0.0)])


@pytest.fixture()
def dictionary():
    d = Dictionary()
    for symbol in "北京大学周伟":
        d.add_symbol(symbol)
    return d


def test_hotword_file_with_scores_comments_and_blank_lines(tmp_path, dictionary):
    path = tmp_path / "hotwords.txt"
    path.write_text("# names\n北京 3.5\n\n周 伟\n大学\t1.5\n", encoding="utf-8")
    hotwords = read_hotwords(path)
    assert [(h.text, h.score) for h in hotwords] == [("北京", 3.5), ("周 伟", None), ("大学", 1.5)]
    assert hotwords[0].origin == f"{path}:2"
    graph = build_context_graph(path, dictionary, default_score=2.0)
    index = dictionary.index
    assert graph.num_phrases == 3
    assert graph.score([index("周"), index("伟")]) == 4.0  # spaces ignored, default score per token
    assert graph.score([index("北"), index("京")]) == 7.0
    assert graph.score([index("大"), index("学")]) == 3.0


def test_a_hotword_outside_the_dictionary_is_reported_not_silently_dropped(tmp_path, dictionary, caplog):
    path = tmp_path / "hotwords.txt"
    path.write_text("北京\n上海\n周伟\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="cif_plugin"):
        graph = build_context_graph(path, dictionary)
    assert graph.num_phrases == 2
    assert f"{path}:2" in caplog.text and "'上海'" in caplog.text and "not in the dictionary" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cif_plugin"):
        assert build_context_graph(["上海"], dictionary) is None
    assert "no hotword is left" in caplog.text


def test_empty_lists_give_no_graph_and_bad_scores_name_the_line(tmp_path, dictionary):
    assert build_context_graph(None, dictionary) is None
    assert build_context_graph([], dictionary) is None
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n", encoding="utf-8")
    assert build_context_graph(empty, dictionary) is None
    bad = tmp_path / "bad.txt"
    bad.write_text("北京\n周伟 -1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"{bad}:2"):
        build_context_graph(bad, dictionary)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        build_context_graph(tmp_path / "missing.txt", dictionary)
    with pytest.raises(ValueError, match="hotword-score"):
        build_context_graph(["北京"], dictionary, default_score=0.0)

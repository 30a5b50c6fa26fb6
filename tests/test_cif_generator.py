"""CIF decoding: greedy, beam search against brute-force enumeration, batch independence, nbest."""

import itertools
import logging

import pytest
import torch
from fairseq_cli.generate import get_symbols_to_strip_from_output

from cif_plugin.generation import CifGenerator
from cif_plugin.generation.language_models import load_fairseq_lm

from fairseq_setup import build_from_command_line


@pytest.fixture(scope="module")
def model_and_sample(tiny_data):
    torch.manual_seed(3)  # before the model is built: its weights must not depend on the tests run before
    _, task, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny")
    # Sharpen the random decoder so that hypotheses differ clearly in score.
    with torch.no_grad():
        model.decoder.output_projection.weight.mul_(4.0)
    task.load_dataset("dev")
    dataset = task.datasets["dev"]
    sample = dataset.collater([dataset[i] for i in range(4)])
    return task, model.eval(), sample


def _fixed_fire_model(model, counts):
    """Make the CIF fire ``counts[b]`` times for utterance b: weights scaled to those lengths."""
    original = model.forward_cif
    model.cif.weight_predictor.dropout.p = 0.0

    def forward_cif(encoder, target_lengths=None, tail_threshold=None):
        model.cif.train()  # scaling to the given lengths happens in training mode only
        try:
            return original(encoder, target_lengths=torch.as_tensor(counts), tail_threshold=tail_threshold)
        finally:
            model.cif.eval()

    model.forward_cif = forward_cif
    return model


def test_greedy_takes_the_arg_max_of_each_step_given_its_own_prefix(model_and_sample):
    """Greedy search against a decoder run from scratch on each prefix (no cache, no search state)."""
    task, model, sample = model_and_sample
    dictionary = task.target_dictionary
    eos, banned = dictionary.eos(), [dictionary.pad(), dictionary.bos()]
    hypotheses = CifGenerator(model, dictionary, beam=1).generate([model], sample)
    net_input = sample["net_input"]
    with torch.no_grad():
        cif = model.forward_cif(model.forward_encoder(net_input["src_tokens"], net_input["src_lengths"]))
        for b, utterance in enumerate(hypotheses):
            prefix = []
            for step in range(int(cif["fire_counts"][b])):
                prev = torch.tensor([[eos, *prefix]])
                logits, _ = model.decoder(prev, {"cif_out": cif["cif_out"][b : b + 1, : step + 1]})
                logits[0, -1, banned] = float("-inf")
                prefix.append(int(logits[0, -1].argmax()))
                if prefix[-1] == eos:
                    break
            decoded = utterance[0]["tokens"].tolist()
            assert [t for t in decoded if t != eos] == [t for t in prefix if t != eos]
            assert len(prefix) > 1


def _brute_force_ranking(model, cif_out, allowed, steps, eos):
    """Every sequence of ``steps`` allowed tokens scored by teacher forcing, cut after its first </s>."""
    sequences = torch.tensor(list(itertools.product(allowed, repeat=steps)))
    prev = torch.cat([torch.full((len(sequences), 1), eos), sequences[:, :-1]], dim=1)
    logits, _ = model.decoder(prev, {"cif_out": cif_out.expand(len(sequences), -1, -1)})
    log_probs = torch.log_softmax(logits.float(), -1).gather(2, sequences.unsqueeze(2)).squeeze(2)
    best = {}
    for sequence, token_scores in zip(sequences.tolist(), log_probs.tolist(), strict=True):
        cut = sequence.index(eos) + 1 if eos in sequence else steps
        best[tuple(sequence[:cut])] = sum(token_scores[:cut])
    return sorted(best.items(), key=lambda item: -item[1])


def test_beam_search_finds_the_best_sequences_of_a_brute_force_enumeration(tiny_data):
    _, task, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny")
    torch.manual_seed(5)
    with torch.no_grad():
        model.decoder.output_projection.weight.mul_(3.0)
    model.eval()
    dictionary = task.target_dictionary
    steps, vocab = 3, len(dictionary)
    cif = {"cif_out": torch.randn(1, steps, 64), "fire_counts": torch.tensor([steps]),
           "fire_frames": torch.arange(steps).unsqueeze(0)}  # fmt: skip
    with torch.no_grad():
        allowed = [t for t in range(vocab) if t not in (dictionary.pad(), dictionary.bos())]
        ranking = _brute_force_ranking(model, cif["cif_out"], allowed, steps, dictionary.eos())
        generator = CifGenerator(model, dictionary, beam=vocab**2, nbest=5)
        tokens, step_scores = generator.search(cif)
        hypotheses = generator._hypotheses(tokens, step_scores, cif["fire_counts"], cif["fire_frames"])[0]
    for hypothesis, (sequence, score) in zip(hypotheses, ranking[:5], strict=True):
        assert tuple(hypothesis["tokens"].tolist()) == sequence
        assert hypothesis["score"].item() == pytest.approx(score, abs=1e-4)


def test_results_do_not_depend_on_batch_composition(model_and_sample):
    task, model, sample = model_and_sample
    generator = CifGenerator(model, task.target_dictionary, beam=4, nbest=2)
    batched = generator.generate([model], sample)
    for i in range(sample["target"].size(0)):
        length = int(sample["net_input"]["src_lengths"][i])
        alone = {"net_input": {"src_tokens": sample["net_input"]["src_tokens"][i : i + 1, :length],
                               "src_lengths": sample["net_input"]["src_lengths"][i : i + 1]}}  # fmt: skip
        single = generator.generate([model], alone)[0]
        for a, b in zip(single, batched[i], strict=True):
            assert torch.equal(a["tokens"], b["tokens"])
            torch.testing.assert_close(a["score"], b["score"], atol=1e-4, rtol=1e-5)


def test_a_model_left_in_training_mode_decodes_in_eval_mode(model_and_sample):
    task, model, sample = model_and_sample
    generator = CifGenerator(model, task.target_dictionary, beam=2)
    expected = generator.generate([model], sample)
    model.train()  # dropout on: decoding must switch it off
    try:
        got = generator.generate([model], sample)
        assert not any(module.training for module in model.modules())
    finally:
        model.eval()
    for a, b in zip(got, expected, strict=True):
        assert torch.equal(a[0]["tokens"], b[0]["tokens"]) and torch.equal(a[0]["score"], b[0]["score"])


def test_nbest_hypotheses_are_ordered_and_consistent(model_and_sample):
    task, model, sample = model_and_sample
    eos = task.target_dictionary.eos()
    results = CifGenerator(model, task.target_dictionary, beam=5, nbest=5).generate([model], sample)
    for hypotheses in results:
        scores = [h["score"].item() for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h["tokens"].tolist()) for h in hypotheses}) == len(hypotheses)
        for h in hypotheses:
            torch.testing.assert_close(h["score"], h["positional_scores"].sum())
            assert eos not in h["tokens"][:-1].tolist()  # cut after the first </s>
            assert h["alignment"].shape == (len(h["tokens"]), 2)
            assert torch.equal(h["alignment"][:, 0], h["fire_frames"])
            frames = h["fire_frames"].tolist()
            assert frames == sorted(frames)


def test_decoding_steps_equal_the_fire_counts(model_and_sample):
    task, model, sample = model_and_sample
    counts = [2, 5, 1, 3]
    eos = task.target_dictionary.eos()
    fixed = _fixed_fire_model(model, counts)
    try:
        results = CifGenerator(fixed, task.target_dictionary, beam=3, nbest=3).generate([fixed], sample)
    finally:
        del fixed.forward_cif
    for count, hypotheses in zip(counts, results, strict=True):
        for h in hypotheses:
            length = len(h["tokens"])
            assert length <= count and (length == count or h["tokens"][-1] == eos)


def test_nar_decoding_takes_the_arg_max_of_each_cif_position(tiny_data):
    """A NAR decoder reads all CIF vectors at once: each step is the best emittable token there."""
    _, task, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny", ["--do-decoder-nar"])
    torch.manual_seed(12)
    model.eval()
    task.load_dataset("dev")
    dataset, dictionary = task.datasets["dev"], task.target_dictionary
    sample = dataset.collater([dataset[i] for i in range(3)])
    generator = CifGenerator(model, dictionary, beam=4)
    assert generator.mode == "nar"
    with torch.no_grad():
        results = generator.generate([model], sample)
        encoder = model.forward_encoder(sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"])
        cif = model.forward_cif(encoder, tail_threshold=generator.tail_threshold)
        logits = model.decoder(None, encoder_out=cif)[0]
    for b, hypotheses in enumerate(results):
        log_probs = torch.log_softmax(logits[b, : int(cif["fire_counts"][b])].float(), dim=-1)
        log_probs[:, [dictionary.pad(), dictionary.bos()]] = float("-inf")
        best, tokens = log_probs.max(dim=-1)
        tokens = tokens.tolist()
        cut = tokens.index(dictionary.eos()) + 1 if dictionary.eos() in tokens else len(tokens)
        assert len(hypotheses) == 1 and hypotheses[0]["tokens"].tolist() == tokens[:cut]
        torch.testing.assert_close(hypotheses[0]["positional_scores"], best[:cut])


def test_generator_options_and_defaults(model_and_sample, language_model, tiny_data):
    """Greedy by default; beam > 1 returns nbest hypotheses; an LM fuses only with a non-zero weight;
    what fairseq-generate reads from a generator."""
    task, model, sample = model_and_sample
    dictionary = task.target_dictionary
    generator = CifGenerator(model, dictionary)
    assert generator.mode == "greedy" and generator.tgt_dict is dictionary
    assert get_symbols_to_strip_from_output(generator) == {dictionary.eos()}
    for beam in (2, 3):
        results = CifGenerator(model, dictionary, beam=beam, nbest=beam).generate([model], sample)
        assert all(len(hypotheses) == beam for hypotheses in results)
    lm = load_fairseq_lm(str(language_model), dictionary, str(tiny_data))
    assert CifGenerator(model, dictionary, lm=lm).lm is None  # lm_weight defaults to 0: no fusion
    assert CifGenerator(model, dictionary, lm=lm, lm_weight=1.0).lm is lm
    assert CifGenerator(model, dictionary, lm=None, lm_weight=0.5).lm is None
    with pytest.raises(ValueError, match="--nbest 3 cannot exceed --beam 2"):
        CifGenerator(model, dictionary, beam=2, nbest=3)


def test_generator_logs_its_settings(model_and_sample, language_model, tiny_data, caplog):
    """fairseq-generate's log is where a user checks which search ran: mode, beam, nbest, tail, LM weight."""
    task, model, _ = model_and_sample
    dictionary = task.target_dictionary
    lm = load_fairseq_lm(str(language_model), dictionary, str(tiny_data))
    logger_name = "cif_plugin.generation.cif_generator"
    with caplog.at_level(logging.INFO, logger=logger_name):
        CifGenerator(model, dictionary, beam=3, nbest=2, tail_threshold=0.45, lm=lm, lm_weight=0.25)
        CifGenerator(model, dictionary)
    assert [record.getMessage() for record in caplog.records if record.name == logger_name] == [
        "CIF decoding: mode beam, beam 3, nbest 2, tail threshold 0.45, LM weight 0.25",
        "CIF decoding: mode greedy, beam 1, nbest 1, tail threshold 0.4",
    ]


def test_lm_fusion_with_a_nar_decoder_is_refused(tiny_data, language_model):
    _, task, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny", ["--do-decoder-nar"])
    lm = load_fairseq_lm(str(language_model), task.target_dictionary, str(tiny_data))
    with pytest.raises(
        ValueError, match="^LM fusion needs an autoregressive decoder; this model's decoder is NAR$"
    ):
        CifGenerator(model, task.target_dictionary, lm=lm, lm_weight=0.5)

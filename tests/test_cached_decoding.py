"""Step-by-step decoding on preallocated caches equals teacher forcing (the decoder's own forward)."""

from types import SimpleNamespace

import pytest
import torch
from fairseq.data import Dictionary
from fairseq.models.transformer_lm import TransformerLanguageModel, TransformerLanguageModelConfig

from cif_plugin.generation import CifGenerator
from cif_plugin.generation.cached_decoding import CachedDecoderLayers, CifDecoderSteps, LanguageModelSteps
from cif_plugin.models.cif_decoder import CifArDecoder, DecoderLayerOptions


def _dictionary(size: int = 12) -> Dictionary:
    dictionary = Dictionary()
    for index in range(size):
        dictionary.add_symbol(f"w{index}")
    return dictionary


def _cif_decoder(dictionary, normalize_before: bool, learned_positions: bool = False) -> CifArDecoder:
    torch.manual_seed(3)
    layers = DecoderLayerOptions(
        embed_dim=16, ffn_dim=32, num_layers=3, num_heads=4, dropout=0.0, attention_dropout=0.0,
        activation_dropout=0.0, normalize_before=normalize_before,
    )  # fmt: skip
    decoder = CifArDecoder(dictionary, cif_dim=8, layers=layers, learned_positions=learned_positions)
    return decoder.double().eval()


def _histories(dictionary, rows: int, steps: int, seed: int):
    """(rows, steps) random token histories (no specials) and, per step, a random row reordering."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.randint(dictionary.nspecial, len(dictionary), (rows, steps), generator=generator)
    origins = [torch.randint(0, rows, (rows,), generator=generator) for _ in range(steps)]
    return tokens, origins


def _step_through(stepper, tokens, origins, eos: int):
    """Logits of every step while rows are reordered after each; returns them with the histories
    the reordering made (row r's history at step t is what its logits at t were computed from)."""
    rows, steps = tokens.shape
    history = torch.full((rows, 1), eos)
    logits, histories = [], []
    for step in range(steps):
        logits.append(stepper.logits(history[:, -1], step))
        histories.append(history.clone())
        stepper.reorder(origins[step])
        history = torch.cat([history[origins[step]], tokens[:, step : step + 1]], dim=1)
    return logits, histories


@pytest.mark.parametrize("normalize_before", [True, False])
@pytest.mark.parametrize("learned_positions", [False, True])
def test_cif_decoder_steps_equal_teacher_forcing_under_beam_reordering(normalize_before, learned_positions):
    dictionary = _dictionary()
    decoder = _cif_decoder(dictionary, normalize_before, learned_positions)
    rows, steps = 5, 6
    cif_out = torch.randn(rows, steps, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    tokens, origins = _histories(dictionary, rows, steps, seed=2)
    with torch.no_grad():
        stepper = CifDecoderSteps(decoder, cif_out)
        logits, histories = _step_through(stepper, tokens, origins, dictionary.eos())
        # the CIF vectors travel with the rows: follow them through the same reorderings
        row_of = torch.arange(rows)
        for step in range(steps):
            expected, _ = decoder(histories[step], {"cif_out": cif_out[row_of, : step + 1]})
            # fairseq's attention takes its softmax in float32 even in float64; the steps' stays in float64
            torch.testing.assert_close(logits[step], expected[:, -1], atol=1e-6, rtol=0)
            row_of = row_of[origins[step]]


def _random_lm(dictionary, normalize_before: bool, learned_positions: bool) -> TransformerLanguageModel:
    torch.manual_seed(4)
    config = TransformerLanguageModelConfig(
        decoder_layers=2, decoder_embed_dim=16, decoder_ffn_embed_dim=32, decoder_attention_heads=2,
        decoder_normalize_before=normalize_before, decoder_learned_pos=learned_positions, dropout=0.0,
    )  # fmt: skip
    config.max_target_positions = 64
    task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    return TransformerLanguageModel.build_model(config, task).eval()


@pytest.mark.parametrize("normalize_before", [True, False])
@pytest.mark.parametrize("learned_positions", [False, True])
def test_language_model_steps_equal_teacher_forcing_under_beam_reordering(
    normalize_before, learned_positions
):
    dictionary = _dictionary()
    lm = _random_lm(dictionary, normalize_before, learned_positions)
    rows, steps = 4, 7
    tokens, origins = _histories(dictionary, rows, steps, seed=5)
    with torch.no_grad():
        stepper = LanguageModelSteps(lm, rows, steps, torch.zeros(()))
        logits, histories = _step_through(stepper, tokens, origins, dictionary.eos())
        for step in range(steps):
            # float32: fairseq's teacher-forced attention takes torch's fused kernel, whose rounding differs
            expected, _ = lm(histories[step])
            torch.testing.assert_close(logits[step], expected[:, -1], atol=1e-5, rtol=0)


def test_a_changed_weight_is_read_at_the_next_decode():
    """The transposed weight copies are remade when a weight changes in place (as an optimiser step does)."""
    dictionary = _dictionary()
    decoder = _cif_decoder(dictionary, normalize_before=True)
    cif_out = torch.randn(2, 3, 8, dtype=torch.float64)
    prev = torch.full((2,), dictionary.eos())
    with torch.no_grad():
        before = CifDecoderSteps(decoder, cif_out).logits(prev, 0)
        decoder.output_projection.weight.mul_(2.0)
        decoder.layers[0].fc1.weight.add_(0.5)
        decoder.input_proj.weight.mul_(-1.0)
        after = CifDecoderSteps(decoder, cif_out).logits(prev, 0)
        expected, _ = decoder(prev[:, None], {"cif_out": cif_out[:, :1]})
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected[:, -1], atol=1e-10, rtol=0)


def test_unsupported_layer_options_are_refused_by_name():
    dictionary = _dictionary()
    decoder = _cif_decoder(dictionary, normalize_before=True)
    decoder.layers[1].cross_self_attention = True
    with pytest.raises(ValueError, match="cross_self_attention"):
        CachedDecoderLayers(decoder.layers, rows=1, max_steps=2, like=torch.zeros(()))


@pytest.mark.parametrize("beam", [1, 3])
def test_a_batch_without_any_fire_decodes_to_nothing(beam):
    """Silence: no CIF fire anywhere in the batch gives empty hypotheses, with and without an LM."""
    dictionary = _dictionary()
    model = SimpleNamespace(decoder=_cif_decoder(dictionary, normalize_before=True).float())
    lm = _random_lm(dictionary, normalize_before=True, learned_positions=False)
    cif = {
        "cif_out": torch.zeros(2, 0, 8),
        "fire_counts": torch.tensor([0, 0]),
        "fire_frames": torch.zeros(2, 0, dtype=torch.long),
    }
    for fused in (None, lm):
        generator = CifGenerator(model, dictionary, beam=beam, lm=fused, lm_weight=0.5)
        with torch.no_grad():
            tokens, scores = generator.search(cif)
            hypotheses = generator._hypotheses(tokens, scores, cif["fire_counts"], cif["fire_frames"])
        assert tokens.shape == (2, beam, 0)
        assert [len(h[0]["tokens"]) for h in hypotheses] == [0, 0]

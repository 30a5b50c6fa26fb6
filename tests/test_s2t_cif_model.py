"""The s2t_cif_transformer model: published size, length arithmetic, decoding and padding invariance."""

import torch

from cif_plugin.generation.cached_decoding import CifDecoderSteps

from fairseq_setup import build_from_command_line

PAPER_PARAMETERS = 47_208_587  # as published, with the 4,234-symbol AISHELL-1 dictionary


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_paper_arch_has_the_published_parameter_count(aishell_data):
    _, task, model, _ = build_from_command_line(aishell_data, "s2t_cif_transformer")
    assert len(task.target_dictionary) == 4234
    assert _count(model) == PAPER_PARAMETERS
    parts = {
        "subsampler": 1_279_488, "encoder input linear": 65_792, "conformer blocks": 39_517_440,
        "cif": 197_121, "ctc": 1_088_138, "decoder": 5_060_608,
    }  # fmt: skip
    measured = {
        "subsampler": _count(model.encoder.subsampler),
        "encoder input linear": _count(model.encoder.input_proj),
        "conformer blocks": _count(model.encoder.blocks),
        "cif": _count(model.cif),
        "ctc": _count(model.ctc_proj),
        "decoder": _count(model.decoder),
    }
    assert measured == parts


TINY_ENCODER, TINY_CIF, TINY_DECODER_WITHOUT_VOCAB = 314_400, 12_417, 49_984


def test_tiny_arch_parameter_counts(aishell_data, tiny_data, asg_data):
    """64-dim tiny models: encoder and CIF fixed, CTC layer 64 V + V, decoder 49,984 + 128 V
    (token embedding and bias-free output projection, 64 V each)."""
    for data, vocab in ((aishell_data, 4234), (tiny_data, 14)):
        _, task, model, _ = build_from_command_line(data, "s2t_cif_transformer_tiny")
        assert len(task.target_dictionary) == vocab
        parts = {name: _count(child) for name, child in model.named_children()}
        assert parts == {
            "encoder": TINY_ENCODER,
            "ctc_proj": 65 * vocab,
            "cif": TINY_CIF,
            "decoder": TINY_DECODER_WITHOUT_VOCAB + 128 * vocab,
        }
    assert _count(model) == 379_503  # on the 14-symbol test dictionary
    _, _, ctc_model, _ = build_from_command_line(
        tiny_data, "s2t_ctc_conformer_tiny", ["--criterion", "ctc_asr"]
    )
    assert _count(ctc_model) == TINY_ENCODER + 65 * 14 == 315_310
    _, _, asg_model, _ = build_from_command_line(asg_data, "s2t_asg_conformer_tiny", ["--criterion", "asg"])
    assert _count(asg_model) == TINY_ENCODER + 65 * 16 + 16 * 16 == 315_696  # + the V x V transitions


def test_paper_length_arithmetic(aishell_data):
    """docs/model.md: 426 frames -> 212 after the conv -> 106 -> 53; 39 bins, linear input 4992."""
    _, _, model, _ = build_from_command_line(aishell_data, "s2t_cif_transformer")
    model.eval()
    assert model.encoder.subsampler.out_proj.in_features == 128 * 39 == 4992
    assert model.encoder.subsampler.output_lengths(torch.tensor([426])).tolist() == [212]
    assert model.encoder.output_lengths(torch.tensor([426])).tolist() == [53]
    with torch.no_grad():
        encoder = model.forward_encoder(torch.randn(1, 426, 80), torch.tensor([426]))
    assert encoder["encoder_out"].shape == (1, 53, 256)
    assert not encoder["encoder_padding_mask"].any()


def test_step_by_step_decoding_reproduces_teacher_forced_logits(tiny_data):
    _, task, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny")
    decoder = model.decoder.double().eval()
    torch.manual_seed(0)
    batch, steps = 3, 6
    cif = {"cif_out": torch.randn(batch, steps + 2, 64, dtype=torch.float64)}
    prev_tokens = torch.randint(4, len(task.target_dictionary), (batch, steps))
    prev_tokens[:, 0] = task.target_dictionary.eos()
    with torch.no_grad():
        teacher_forced, extra = decoder(prev_tokens, encoder_out=cif)
        assert teacher_forced.shape[1] == steps and extra["decoder_states"].shape == (batch, steps, 64)
        stepper = CifDecoderSteps(decoder, cif["cif_out"])
        stepwise = [stepper.logits(prev_tokens[:, t], t) for t in range(steps)]
    # fairseq's attention takes its softmax in float32 even in float64; the steps' stays in float64
    torch.testing.assert_close(torch.stack(stepwise, dim=1), teacher_forced, atol=1e-6, rtol=0)


def test_outputs_do_not_depend_on_batch_padding(tiny_data):
    """An utterance alone and padded inside a batch of longer ones gives the same encoder and CIF outputs."""
    _, _, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny")
    model.eval()
    torch.manual_seed(1)
    lengths = torch.tensor([61, 100, 87])  # odd lengths exercise the pooling's length rule
    features = torch.randn(3, 100, 80)
    features[0, 61:] = 50.0  # padding content must not leak in
    with torch.no_grad():
        batched = model.forward_encoder(features, lengths)
        alone = model.forward_encoder(features[:1, :61], lengths[:1])
        batched_cif = model.forward_cif(batched, tail_threshold=0.0)
        alone_cif = model.forward_cif(alone, tail_threshold=0.0)
    frames = alone["encoder_out"].shape[1]
    assert int((~batched["encoder_padding_mask"][0]).sum()) == frames
    torch.testing.assert_close(
        batched["encoder_out"][0, :frames], alone["encoder_out"][0], atol=1e-5, rtol=1e-5
    )
    assert (batched["encoder_out"][0, frames:] == 0).all()
    count = int(alone_cif["fire_counts"][0])
    assert count > 0 and int(batched_cif["fire_counts"][0]) == count
    torch.testing.assert_close(
        batched_cif["cif_out"][0, :count], alone_cif["cif_out"][0, :count], atol=1e-5, rtol=1e-5
    )


def test_nar_decoder_mode(tiny_data):
    _, _, model, _ = build_from_command_line(
        tiny_data, "s2t_cif_transformer_tiny", ["--do-decoder-nar", "--decoder-nar-pad-type", "triangle"]
    )
    decoder = model.decoder.eval()
    assert not hasattr(decoder, "embed_tokens")
    cif = torch.randn(2, 5, 64)
    padding = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    with torch.no_grad():
        logits, _ = decoder(None, {"cif_out": cif, "cif_padding_mask": padding})
        changed = cif.clone()
        changed[:, 3:] = torch.randn(2, 2, 64)  # (a constant shift would vanish in the LayerNorms)
        logits_changed, _ = decoder(None, {"cif_out": changed, "cif_padding_mask": padding})
    assert logits.shape == (2, 5, len(model.decoder.dictionary))
    torch.testing.assert_close(logits[:, :3], logits_changed[:, :3])  # causal: later vectors are not seen
    assert not torch.allclose(logits[0, 3:], logits_changed[0, 3:])


def test_boolean_options_can_be_set_either_way(tiny_data):
    defaults, *_ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny")
    assert defaults.model.apply_scaling is True and defaults.model.apply_tail_handling is True
    off, _, model, _ = build_from_command_line(
        tiny_data, "s2t_cif_transformer_tiny", ["--no-apply-scaling", "--no-apply-tail-handling"]
    )
    assert (
        off.model.apply_scaling is False and not model.cif.apply_scaling and not model.cif.apply_tail_handling
    )
    on, *_ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny", ["--apply-scaling"])
    assert on.model.apply_scaling is True


def test_options_named_no_something_switch_it_off(tiny_data):
    """argparse's BooleanOptionalAction sets False for any flag starting with --no-, so
    --no-token-positional-embeddings once left the decoder positions in."""
    _, _, with_positions, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny")
    assert with_positions.decoder.embed_positions is not None
    flags = ["--no-token-positional-embeddings", "--no-scale-embedding", "--no-decoder-final-norm"]
    cfg, _, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny", flags)
    assert cfg.model.no_token_positional_embeddings is True and model.decoder.embed_positions is None
    assert cfg.model.no_scale_embedding is True and model.encoder.embed_scale == 1.0
    assert cfg.model.no_decoder_final_norm is True
    back = [flag.replace("--no-", "--no-no-", 1) for flag in flags]
    cfg, _, model, _ = build_from_command_line(tiny_data, "s2t_cif_transformer_tiny", flags + back)
    assert not (cfg.model.no_token_positional_embeddings or cfg.model.no_scale_embedding)
    assert model.decoder.embed_positions is not None and model.encoder.embed_scale == 8.0


def test_command_line_overrides_the_architecture(tiny_data):
    cfg, _, model, _ = build_from_command_line(
        tiny_data, "s2t_cif_transformer_tiny", ["--encoder-layers", "2", "--pooling-layer-ids", "1"]
    )
    assert cfg.model.encoder_layers == 2 and len(model.encoder.blocks) == 2
    assert cfg.model.encoder_embed_dim == 64  # the tiny arch's value
    assert cfg.model.cif_threshold == 0.99  # the paper's value

"""Chunk-causal encoders and streaming sessions: the stream equals one offline forward with the same
chunk mask, whatever pieces the audio comes in; the chunk mask hides the future."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from fairseq.models.transformer_lm import TransformerLanguageModel, TransformerLanguageModelConfig

from cif_plugin.generation import CifGenerator, DecodingOptions
from cif_plugin.inference import Recognizer
from cif_plugin.inference.streaming_features import StreamingFbank
from cif_plugin.models.streaming_encoder import EncoderStream
from cif_plugin.modules import CifWeightPredictor
from cif_plugin.modules.chunking import chunk_blocked_mask
from cif_plugin.ops.hotwords import build_context_graph
from cif_plugin.tasks.fbank_features import kaldi_fbank

from fairseq_setup import build_from_command_line
from speech_data import CHARACTERS, write_data_config

SAMPLE_RATE = 16000
FRAME_WEIGHT = 0.3  # CIF weight per 80 ms frame: a fire every ~3 frames


@pytest.fixture(scope="module")
def stream_data(tmp_path_factory):
    """A data folder without utterance CMVN (streams cannot normalise by the whole utterance)."""
    root = tmp_path_factory.mktemp("stream_data")
    (root / "dict.txt").write_text("".join(f"{c} {100 - i}\n" for i, c in enumerate(CHARACTERS)))
    write_data_config(root)
    return root


def _model(stream_data, arch, extra=(), seed=0):
    torch.manual_seed(seed)
    _, task, model, _ = build_from_command_line(stream_data, arch, list(extra))
    with torch.no_grad():
        for module in model.modules():  # a trained-looking BatchNorm, so its statistics matter
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
        if getattr(model, "cif", None) is not None:
            predictor = model.cif.weight_predictor.output_proj
            predictor.weight.mul_(0.1)
            predictor.bias.fill_(math.log(FRAME_WEIGHT / (1 - FRAME_WEIGHT)))
    return task, model.eval()


def _audio(seconds, seed):
    generator = torch.Generator().manual_seed(seed)
    samples = int(seconds * SAMPLE_RATE)
    tone = torch.sin(torch.arange(samples) * 0.05 * (1 + torch.rand((), generator=generator)))
    return (0.3 * tone + 0.1 * torch.randn(samples, generator=generator)).numpy().astype(np.float32)


def _pieces(samples, seed, fixed=None):
    """Random piece sizes of 1-1200 samples, or ``fixed`` samples each."""
    rng = np.random.default_rng(seed)
    start = 0
    while start < len(samples):
        size = fixed or int(rng.integers(1, 1200))
        yield samples[start : start + size]
        start += size


def test_chunk_mask_is_its_definition():
    for frames, chunk, left in [(7, 2, -1), (9, 3, 1), (6, 1, 0), (5, 8, -1)]:
        mask = chunk_blocked_mask(frames, chunk, left)
        for i in range(frames):
            for j in range(frames):
                visible = j // chunk <= i // chunk and (left < 0 or j // chunk >= i // chunk - left)
                assert bool(mask[i, j]) == (not visible), (frames, chunk, left, i, j)
    assert chunk_blocked_mask(5, 0) is None


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_a_chunked_encoder_does_not_see_the_future(stream_data, chunk):
    """Input after chunk c's last window leaves chunks <= c as they were; without the mask it does not."""
    _, model = _model(stream_data, "s2t_cif_transformer_streaming_tiny")
    features = torch.randn(1, 200, 80)
    cut = 2  # output chunks kept
    first_changed = 8 * chunk * cut + 1  # input frames the first `cut` chunks read: 0 .. 8 S cut
    changed = features.clone()
    changed[:, first_changed:] += torch.randn_like(changed[:, first_changed:])
    lengths = torch.tensor([200])
    with torch.no_grad():
        for chunk_size, should_hold in ((chunk, True), (0, False)):
            before = model.forward_encoder(features, lengths, chunk_size)["encoder_out"][:, : chunk * cut]
            after = model.forward_encoder(changed, lengths, chunk_size)["encoder_out"][:, : chunk * cut]
            assert torch.allclose(before, after, atol=1e-6) == should_hold


def test_chunked_weight_predictor_is_the_conv_of_each_chunk_with_left_context():
    """Brute force: each chunk convolved alone with the frames before it and zeros after it."""
    torch.manual_seed(0)
    predictor = CifWeightPredictor(6, "conv", conv_width=5, conv_channels=4).eval()
    hidden = torch.randn(2, 11, 6)
    padding_mask = torch.arange(11)[None] >= torch.tensor([11, 8])[:, None]
    with torch.no_grad():
        found = predictor(hidden, padding_mask, chunk_size=3)
        zeroed = hidden.masked_fill(padding_mask.unsqueeze(-1), 0.0)
        for b in range(2):
            for start in range(0, 11, 3):
                window = torch.zeros(1, 6, 2 + 3 + 2)
                for k in range(-2, 5):
                    t = start + k
                    if 0 <= t < 11 and k < 3:  # left context and the chunk; zeros after it
                        window[0, :, k + 2] = zeroed[b, t]
                states = predictor.conv(window)[0, :, 2:5].t()  # 'same' padding: outputs of the 3 frames
                expected = torch.sigmoid(predictor.output_proj(states)).squeeze(-1)
                size = min(3, 11 - start)
                valid = ~padding_mask[b, start : start + size]
                torch.testing.assert_close(
                    found[b, start : start + size][valid], expected[:size][valid], atol=1e-6, rtol=1e-6
                )


@pytest.mark.parametrize("left_chunks", [-1, 0, 1])
@pytest.mark.parametrize("chunk", [1, 2, 3, 8])
def test_the_encoder_stream_equals_the_chunked_forward(stream_data, chunk, left_chunks):
    """Features fed in random pieces of 1-11 frames give the offline chunk-masked encoder output."""
    left = ["--encoder-left-chunks", str(left_chunks)]
    _, model = _model(stream_data, "s2t_cif_transformer_streaming_tiny", left)
    features = torch.randn(237, 80)
    with torch.no_grad():
        expected = model.forward_encoder(features[None], torch.tensor([237]), chunk)["encoder_out"]
    stream, outputs, start = EncoderStream(model.encoder, chunk), [], 0
    rng = np.random.default_rng(chunk)
    while start < 237:
        size = int(rng.integers(1, 12))
        outputs.append(stream.accept_features(features[start : start + size]))
        start += size
    outputs.append(stream.finalize())
    torch.testing.assert_close(torch.cat(outputs, dim=1), expected, atol=1e-4, rtol=1e-4)


def test_streamed_fbank_equals_the_whole_recording():
    samples = _audio(1.37, seed=3)
    fbank = StreamingFbank()
    frames = torch.cat([fbank.accept(piece) for piece in _pieces(samples, seed=4)])
    expected = torch.from_numpy(kaldi_fbank(torch.from_numpy(samples)[None]))
    torch.testing.assert_close(frames, expected, atol=1e-4, rtol=1e-4)


def _offline(recognizer, samples, chunk):
    """(CIF output, best hypothesis) of one offline decode with chunk size ``chunk``."""
    model, generator = recognizer.model, recognizer.generator
    features = torch.from_numpy(recognizer.features(torch.from_numpy(samples)[None]))[None]
    with torch.no_grad():
        encoder = model.forward_encoder(features, torch.tensor([features.size(1)]), chunk)
        cif = model.forward_cif(encoder, tail_threshold=generator.tail_threshold)
        best = generator.generate([model], _sample(features))[0][0]
    return cif, best


def _sample(features):
    return {"net_input": {"src_tokens": features, "src_lengths": torch.tensor([features.size(1)])}}


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("chunk_ms", [80, 160, 240, 640])
def test_a_cif_stream_equals_one_offline_decode(stream_data, chunk_ms, beam):
    """Audio in pieces of 37 ms and of random sizes: the stream's CIF vectors (1e-4), tokens and
    token times equal one offline forward with the same chunk mask; emitted tokens are final."""
    task, model = _model(stream_data, "s2t_cif_transformer_streaming_tiny", seed=beam)
    recognizer = Recognizer(model, task, DecodingOptions(beam=beam))
    chunk = chunk_ms // 80
    samples = _audio(2.9, seed=chunk_ms)
    model.encoder.chunk_size = chunk  # the offline decode's chunk mask
    cif, best = _offline(recognizer, samples, chunk)
    expected_tokens = [t for t in best["tokens"].tolist() if t != task.target_dictionary.eos()]
    assert int(cif["fire_counts"][0]) >= 5
    for pieces in (_pieces(samples, seed=1, fixed=592), _pieces(samples, seed=2)):
        session = recognizer.stream(chunk_ms)
        emitted = []
        for piece in pieces:
            emitted += session.accept_waveform(piece)
        emitted += session.finalize()
        torch.testing.assert_close(session.cif_vectors, cif["cif_out"], atol=1e-4, rtol=1e-4)
        transcript = session.transcript
        assert [task.target_dictionary.index(t.token) for t in transcript.tokens] == expected_tokens
        assert [t.token for t in emitted] == [t.token for t in transcript.tokens]
        assert all(a.emitted_at <= b.emitted_at for a, b in zip(emitted, emitted[1:], strict=False))


@pytest.mark.parametrize("beam", [1, 3])
def test_lm_fusion_and_hotwords_stream_as_offline(stream_data, beam):
    """A random transformer LM in shallow fusion and a hotword list: the stream's tokens equal the
    offline decode's, with the LM's caches growing with the fires."""
    task, model = _model(stream_data, "s2t_cif_transformer_streaming_tiny", seed=7)
    dictionary = task.target_dictionary
    torch.manual_seed(4)
    config = TransformerLanguageModelConfig(
        decoder_layers=2,
        decoder_embed_dim=16,
        decoder_ffn_embed_dim=32,
        decoder_attention_heads=2,
        dropout=0.0,
    )
    config.max_target_positions = 256
    lm_task = SimpleNamespace(source_dictionary=dictionary, target_dictionary=dictionary)
    lm = TransformerLanguageModel.build_model(config, lm_task).eval()
    recognizer = Recognizer(model, task, DecodingOptions(beam=beam))
    recognizer.generator = CifGenerator(
        model, dictionary, beam=beam, lm=lm, lm_weight=0.5,
        context_graph=build_context_graph([CHARACTERS[3:6], CHARACTERS[1:3]], dictionary, 1.5),
    )  # fmt: skip
    samples = _audio(3.3, seed=11)
    model.encoder.chunk_size = 3
    _, best = _offline(recognizer, samples, 3)
    session = recognizer.stream(240)
    for piece in _pieces(samples, seed=12):
        session.accept_waveform(piece)
    session.finalize()
    expected = [t for t in best["tokens"].tolist() if t != dictionary.eos()]
    assert [dictionary.index(t.token) for t in session.transcript.tokens] == expected


def test_greedy_stream_emits_each_token_within_a_chunk_of_its_fire(stream_data):
    """A greedy stream emits a token in the chunk its CIF fires in: never later than one chunk
    (plus the front end's 25 ms window) after the token's fire frame ends."""
    task, model = _model(stream_data, "s2t_cif_transformer_streaming_tiny")
    recognizer = Recognizer(model, task, DecodingOptions(beam=1))
    session = recognizer.stream(320)
    emitted = []
    for piece in _pieces(_audio(3.0, seed=9), seed=0, fixed=160):
        emitted += session.accept_waveform(piece)
    assert emitted, "no token before the end of the stream"
    for token in emitted:
        assert token.emitted_at - token.end <= 0.32 + 0.08 + 0.025 + 1e-6


@pytest.mark.parametrize("beam", [1, 3])
def test_a_ctc_stream_equals_one_offline_decode(stream_data, beam):
    """Greedy (best path as frames arrive) and prefix beam search with hotwords (advanced chunk by
    chunk): the offline labels and times; emitted labels are final."""
    streaming = ["--encoder-chunk-size", "2", "--causal-conv", "--criterion", "ctc_asr"]
    task, model = _model(stream_data, "s2t_ctc_conformer_tiny", streaming)
    dictionary = task.target_dictionary
    hotwords = [CHARACTERS[2:5]] if beam > 1 else None
    recognizer = Recognizer(model, task, DecodingOptions(beam=beam, hotwords=hotwords))
    samples = _audio(2.3, seed=5)
    expected = recognizer.transcribe([(samples, SAMPLE_RATE)])[0]
    assert expected.tokens
    session = recognizer.stream(160)
    emitted = []
    for piece in _pieces(samples, seed=6):
        emitted += session.accept_waveform(piece)
    emitted += session.finalize()
    assert session.transcript.tokens == expected.tokens
    assert [t.token for t in emitted] == [t.token for t in expected.tokens]
    assert dictionary.index(expected.tokens[0].token) != dictionary.unk()


def test_streams_refuse_what_cannot_stream(stream_data, tmp_path):
    task, model = _model(stream_data, "s2t_cif_transformer_tiny")  # symmetric convolutions
    recognizer = Recognizer(model, task, DecodingOptions())
    with pytest.raises(ValueError, match="causal"):
        recognizer.stream(640)
    task, model = _model(stream_data, "s2t_cif_transformer_streaming_tiny")
    recognizer = Recognizer(model, task, DecodingOptions())
    with pytest.raises(ValueError, match="multiple of the model's 80 ms"):
        recognizer.stream(100)
    session = recognizer.stream(640)
    with pytest.raises(ValueError, match="16000 Hz"):
        session.accept_waveform(np.zeros(100, dtype=np.float32), 8000)
    session.finalize()
    with pytest.raises(RuntimeError, match="finalized"):
        session.accept_waveform(np.zeros(100, dtype=np.float32))
    write_data_config(tmp_path, utterance_cmvn=True)
    (tmp_path / "dict.txt").write_text((stream_data / "dict.txt").read_text())
    task, model = _model(tmp_path, "s2t_cif_transformer_streaming_tiny")
    with pytest.raises(ValueError, match="utterance_cmvn"):
        Recognizer(model, task, DecodingOptions()).stream(640)

"""ONNX export and the torch-free onnxruntime backend (docs/onnx.md): graphs within 1e-4 of PyTorch,
the same tokens and times as the PyTorch recogniser for the three families, graphs that do not depend
on the export length, a backend that runs with torch and fairseq unimportable, and bad folders named."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile
import torch

from cif_plugin.export.onnx_export import export_onnx
from cif_plugin.inference import Recognizer
from cif_plugin.runtime import BundleError, OnnxRecognizer
from cif_plugin.runtime.features import mel_banks, numpy_fbank
from cif_plugin.runtime.search import _top_candidates, _top_indices
from cif_plugin.tasks.fbank_features import kaldi_fbank

from conftest import FAVOURITE
from speech_data import write_spoken_recording

DURATIONS = (2.2, 1.1, 3.0, 1.6, 2.6, 0.7)


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx_audio")
    rng = np.random.default_rng(5)
    paths = []
    for index, seconds in enumerate(DURATIONS):
        path = folder / f"u{index}.wav"
        t = np.arange(int(seconds * 16000)) / 16000
        tone = 0.3 * np.sin(2 * np.pi * (200 + 80 * index) * t) * (np.sin(2 * np.pi * 3 * t) > 0)
        soundfile.write(str(path), tone + 0.05 * rng.normal(size=len(t)), 16000)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def exported(tiny_checkpoint, ctc_training, asg_checkpoint, tmp_path_factory):
    """family -> (checkpoint, ONNX folder)."""
    root = tmp_path_factory.mktemp("onnx")
    checkpoints = {"cif": tiny_checkpoint, "ctc": ctc_training[1], "asg": asg_checkpoint}
    return {family: (path, _export(path, root / family)) for family, path in checkpoints.items()}


def _export(checkpoint, folder, **options):
    export_onnx(checkpoint, folder, **options)
    return folder


def _outputs(transcripts):
    return [(t.name, t.text, [(x.token, x.start, x.end) for x in t.tokens], t.error) for t in transcripts]


@pytest.mark.parametrize("family, beam", [("cif", 1), ("cif", 4), ("ctc", 1), ("asg", 1)])
def test_onnxruntime_gives_the_tokens_and_times_of_pytorch(exported, audio_files, family, beam):
    checkpoint, folder = exported[family]
    expected = Recognizer.from_pretrained(checkpoint, beam=beam).transcribe(audio_files, batch_size=3)
    got = OnnxRecognizer(folder, beam=beam).transcribe(audio_files, batch_size=3)
    assert _outputs(got) == _outputs(expected)
    assert [t.score for t in got] == pytest.approx([t.score for t in expected], rel=1e-4, abs=1e-3)
    if family != "ctc":  # an untrained CTC model may emit only blanks
        assert any(t.tokens for t in got)


def test_encoder_graph_is_within_1e4_of_pytorch(exported, audio_files):
    checkpoint, folder = exported["cif"]
    recognizer = Recognizer.from_pretrained(checkpoint)
    onnx_recognizer = OnnxRecognizer(folder)
    features = [onnx_recognizer.features(soundfile.read(str(p), dtype="float32")[0]) for p in audio_files[:3]]
    lengths = np.array([len(f) for f in features])
    padded = np.zeros((3, lengths.max(), 80), dtype=np.float32)
    for b, f in enumerate(features):
        padded[b, : len(f)] = f
    names = [node.name for node in onnx_recognizer.encoder.get_outputs()]
    got = dict(
        zip(names, onnx_recognizer.encoder.run(None, {"features": padded, "lengths": lengths}), strict=True)
    )
    with torch.no_grad():
        encoder = recognizer.model.forward_encoder(torch.from_numpy(padded), torch.from_numpy(lengths))
        cif = recognizer.model.forward_cif(encoder, tail_threshold=0.4)
        ctc = torch.log_softmax(recognizer.model.forward_ctc(encoder["encoder_out"]), dim=-1)
    np.testing.assert_array_equal(got["fire_counts"], cif["fire_counts"].numpy())
    np.testing.assert_array_equal(got["encoder_lengths"], encoder["encoder_lengths"].numpy())
    for b, count in enumerate(cif["fire_counts"].tolist()):
        frames = int(encoder["encoder_lengths"][b])
        np.testing.assert_array_equal(got["fire_frames"][b, :count], cif["fire_frames"][b, :count].numpy())
        np.testing.assert_allclose(got["cif_out"][b, :count], cif["cif_out"][b, :count].numpy(), atol=1e-4)
        np.testing.assert_allclose(
            got["cif_weights"][b, :frames], cif["alpha"][b, :frames].numpy(), atol=1e-4
        )
        np.testing.assert_allclose(got["ctc_log_probs"][b, :frames], ctc[b, :frames].numpy(), atol=1e-4)


def test_graph_does_not_depend_on_the_export_length(exported, tmp_path):
    """Exported from 3 s, the encoder decodes 60 s like PyTorch, and a graph exported from 12 s has
    as many nodes."""
    checkpoint, folder = exported["cif"]
    rng = np.random.default_rng(60)
    t = np.arange(60 * 16000) / 16000
    sixty = 0.2 * np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * 2 * t) > 0) + 0.05 * rng.normal(
        size=len(t)
    )
    sixty = sixty.astype(np.float32)
    expected = Recognizer.from_pretrained(checkpoint, max_segment_seconds=120).transcribe([(sixty, 16000)])
    got = OnnxRecognizer(folder, max_segment_seconds=120).transcribe([(sixty, 16000)])
    assert got[0].ok and _outputs(got) == _outputs(expected)
    from cif_plugin.export import onnx_export

    original = onnx_export.EXPORT_SECONDS
    try:
        onnx_export.EXPORT_SECONDS = 12.0
        longer = _export(checkpoint, tmp_path / "from_12s")
    finally:
        onnx_export.EXPORT_SECONDS = original
    for name in ("encoder.onnx", "decoder_step.onnx"):
        short_nodes = len(onnx.load(str(folder / name)).graph.node)
        assert len(onnx.load(str(longer / name)).graph.node) == short_nodes


def test_numpy_fbank_equals_torchaudio_kaldi_fbank(audio_files):
    for path in audio_files:
        samples, _ = soundfile.read(str(path), dtype="float32")
        expected = kaldi_fbank(torch.from_numpy(samples).unsqueeze(0))
        np.testing.assert_allclose(numpy_fbank(samples), expected, atol=1e-3)
    # white noise of 2 frames and of 10 s plus a partial frame (every bin has energy)
    for length in (561, 160123):
        samples = (0.1 * np.random.default_rng(length).normal(size=length)).astype(np.float32)
        expected = kaldi_fbank(torch.from_numpy(samples).unsqueeze(0))
        np.testing.assert_allclose(numpy_fbank(samples), expected, atol=1e-3)
    assert numpy_fbank(np.zeros(399, dtype=np.float32)).shape == (0, 80)  # shorter than one frame


@pytest.mark.parametrize("bins, rate", [(80, 16000), (40, 16000), (80, 8000)])
def test_mel_filters_are_torchaudios(bins, rate):
    from torchaudio.compliance.kaldi import get_mel_banks

    expected, _ = get_mel_banks(bins, 512, float(rate), 20.0, 0.0, 100.0, -500.0, 1.0)
    got = mel_banks(bins, 512, rate)
    np.testing.assert_allclose(got[:, :-1], expected.numpy(), atol=1e-4)
    assert not got[:, -1].any()  # the Nyquist bin


def test_onnxruntime_backend_runs_without_torch_and_fairseq(exported, audio_files, tmp_path):
    """transcribe.py --backend onnxruntime, hotwords included, in a process where importing torch or
    fairseq fails."""
    checkpoint, folder = exported["cif"]
    expected = Recognizer.from_pretrained(checkpoint, beam=2, hotwords=["四二"]).transcribe(audio_files)
    blocker = (
        "import sys, runpy\n"
        "class Block:\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchaudio', 'fairseq'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    script = Path(__file__).resolve().parents[1] / "scripts" / "transcribe.py"
    command = [sys.executable, "-c", blocker, str(script), "--model", str(folder), "--backend", "onnxruntime"]
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text("四二\n", encoding="utf-8")
    command += ["--beam", "2", "--hotwords", str(hotwords), "--format", "jsonl", "--no-progress"]
    command += [str(path) for path in audio_files]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["text"], [(t["token"], t["start"], t["end"]) for t in r["tokens"]]) for r in lines] == [
        (t.text, [(x.token, x.start, x.end) for x in t.tokens]) for t in expected
    ]


def test_onnxruntime_splits_long_recordings_at_pauses_as_pytorch(exported, tmp_path):
    """Three spoken phrases between pauses, longer than max_segment_seconds: the folder's voice
    activity model finds the regions PyTorch's split finds, and the transcripts are the same."""
    checkpoint, folder = exported["cif"]
    path, _ = write_spoken_recording(tmp_path)
    expected = Recognizer.from_pretrained(checkpoint, max_segment_seconds=2.0).transcribe(
        [path], batch_size=2
    )
    recognizer = OnnxRecognizer(folder, max_segment_seconds=2.0)
    got = recognizer.transcribe([path], batch_size=2)
    assert recognizer.vad is not None and "vad.onnx" in recognizer.manifest["files"]
    assert _outputs(got) == _outputs(expected) and got[0].tokens
    assert got[0].score == pytest.approx(expected[0].score, rel=1e-4, abs=1e-3)
    whole = OnnxRecognizer(folder, max_segment_seconds=120).transcribe([path])
    assert _outputs(whole) != _outputs(got)


def test_onnxruntime_names_an_input_too_short_for_the_model(exported):
    """Shorter than one analysis window: an error for that input only, as the PyTorch recogniser gives."""
    checkpoint, folder = exported["cif"]
    inputs = [
        ("tiny", np.zeros(100, dtype=np.float32), 16000),
        ("fine", np.zeros(16000, dtype=np.float32), 16000),
    ]
    from cif_plugin.inference import NamedAudio

    named = [NamedAudio(*item) for item in inputs]
    got = OnnxRecognizer(folder).transcribe(named)
    expected = Recognizer.from_pretrained(checkpoint).transcribe(named)
    assert got[0].error == "tiny: 0.006 s is too short for the model" and "too short" in expected[0].error
    assert got[1].ok and _outputs(got[1:]) == _outputs(expected[1:])


HOTWORDS = [("四二", 4.0), "九"]  # tiny_data characters; a pair with its own score, one with the default


@pytest.mark.parametrize("family, beam", [("cif", 1), ("cif", 4), ("ctc", 4)])
def test_onnxruntime_hotwords_bias_the_search_as_pytorchs(exported, audio_files, family, beam):
    """The same context graph over the folder's dictionary, the same searches: PyTorch's tokens,
    times and scores (the bonus included), and not those of the search without hotwords."""
    checkpoint, folder = exported[family]
    expected = Recognizer.from_pretrained(checkpoint, beam=beam, hotwords=HOTWORDS, hotword_score=3.0)
    expected = expected.transcribe(audio_files, batch_size=3)
    recognizer = OnnxRecognizer(folder, beam=beam, hotwords=HOTWORDS, hotword_score=3.0)
    got = recognizer.transcribe(audio_files, batch_size=3)
    assert _outputs(got) == _outputs(expected)
    assert [t.score for t in got] == pytest.approx([t.score for t in expected], rel=1e-4, abs=1e-3)
    recognizer.set_hotwords(None)
    assert _outputs(recognizer.transcribe(audio_files, batch_size=3)) != _outputs(got)
    with pytest.raises(ValueError, match="Viterbi"):
        OnnxRecognizer(exported["asg"][1], hotwords=HOTWORDS)


def test_int8_quantisation_keeps_the_graphs_working(exported, audio_files, tmp_path):
    checkpoint, folder = exported["cif"]
    quantized = _export(checkpoint, tmp_path / "int8", quantize="int8")
    manifest = json.loads((quantized / "onnx_model.json").read_text())
    assert manifest["quantized"] == "int8"
    for graph in ("encoder.onnx", "decoder_step.onnx"):
        float_weights = _constant_weight_products(onnx.load(str(folder / graph)).graph)
        quantized_graph = onnx.load(str(quantized / graph)).graph
        # every weight matrix is int8, kernel-1 convolutions' (reached through a reshape) included
        assert float_weights and not _constant_weight_products(quantized_graph), graph
        integer_products = [node for node in quantized_graph.node if node.op_type == "MatMulInteger"]
        assert len(integer_products) == len(float_weights), graph
    transcripts = OnnxRecognizer(quantized).transcribe(audio_files)
    assert all(t.ok for t in transcripts)


def _constant_weight_products(graph) -> list:
    """The float MatMul and Gemm nodes whose second input is computed from constants alone."""
    constant = {initializer.name for initializer in graph.initializer}
    products = []
    for node in graph.node:  # ONNX graphs are topologically sorted
        if all(name in constant for name in node.input if name):
            constant.update(node.output)
        if node.op_type in ("MatMul", "Gemm") and node.input[1] in constant:
            products.append(node.name)
    return products


@pytest.mark.parametrize(
    "damage, named",
    [
        ("truncate encoder", "encoder.onnx"),
        ("delete decoder", "decoder_step.onnx"),
        ("break manifest", "onnx_model.json"),
        ("ctc graph in a cif folder", "encoder.onnx"),
    ],
)
def test_a_corrupt_or_mismatched_folder_names_the_file(exported, tmp_path, damage, named):
    folder = tmp_path / "broken"
    shutil.copytree(exported["cif"][1], folder)
    manifest_path = folder / "onnx_model.json"
    if damage == "truncate encoder":
        data = (folder / "encoder.onnx").read_bytes()
        (folder / "encoder.onnx").write_bytes(data[: len(data) // 2])
    elif damage == "delete decoder":
        (folder / "decoder_step.onnx").unlink()
    elif damage == "break manifest":
        manifest_path.write_text("{not json")
    else:  # a consistent manifest whose encoder is another family's graph
        shutil.copy(exported["ctc"][1] / "encoder.onnx", folder / "encoder.onnx")
        manifest = json.loads(manifest_path.read_text())
        from cif_plugin.runtime.bundle import file_sha256

        manifest["files"]["encoder.onnx"] = file_sha256(folder / "encoder.onnx")
        manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=named):
        OnnxRecognizer(folder)


def test_from_pretrained_with_the_onnxruntime_backend(exported, audio_files):
    checkpoint, folder = exported["cif"]
    recognizer = Recognizer.from_pretrained(folder, backend="onnxruntime", beam=2)
    assert isinstance(recognizer, OnnxRecognizer)
    expected = Recognizer.from_pretrained(checkpoint, beam=2).transcribe(audio_files[:2])
    assert _outputs(recognizer.transcribe(audio_files[:2])) == _outputs(expected)
    biased = Recognizer.from_pretrained(folder, backend="onnxruntime", beam=2, hotwords=HOTWORDS)
    assert biased.context_graph is not None and biased.context_graph.num_phrases == 2
    with pytest.raises(ValueError, match="ngram_lm_path"):
        Recognizer.from_pretrained(folder, backend="onnxruntime", ngram_lm_path="lm.arpa")


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_numpy_resampling_equals_torchaudio(rate):
    import torchaudio

    from cif_plugin.runtime.audio import resample

    samples = (0.2 * np.random.default_rng(rate).normal(size=2 * rate + 17)).astype(np.float32)
    expected = torchaudio.functional.resample(torch.from_numpy(samples)[None], rate, 16000)[0].numpy()
    got = resample(samples, rate, 16000)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_top_indices_are_the_stable_argsort_of_the_beam_candidates(seed):
    rng = np.random.default_rng(seed)
    # few distinct values (ties everywhere, at the cut too) and -inf rows, as finished beams give
    values = rng.integers(-6, 0, size=600).astype(np.float32)
    values[rng.random(600) < 0.3] = -np.inf
    for count in (1, 4, 10, 599, 600, 700):
        expected = np.argsort(-values, kind="stable")[:count]
        np.testing.assert_array_equal(_top_indices(values, count), expected)
    few_finite = np.full(50, -np.inf, dtype=np.float32)
    few_finite[[7, 3]] = [-1.0, -2.0]
    np.testing.assert_array_equal(_top_indices(few_finite, 4), [7, 3, 0, 1])


@pytest.mark.parametrize("seed", range(5))
def test_top_candidates_are_the_stable_argsort_of_all_rows(seed):
    """The row-maximum bound keeps every one of the largest candidates, ties at the cut included."""
    rng = np.random.default_rng(seed)
    for rows, vocab in ((10, 300), (4, 50), (3, 7)):
        values = rng.integers(-5, 0, size=(rows, vocab)).astype(np.float32)
        values[rng.random((rows, vocab)) < 0.3] = -np.inf
        values[rng.integers(rows)] = -np.inf  # a beam that has no candidate (step 0, copies of beam 0)
        values[rng.integers(rows), 1:] = -np.inf  # a finished beam: only its </s>
        for count in (1, rows, 10):
            expected = np.argsort(-values.reshape(-1), kind="stable")[:count]
            np.testing.assert_array_equal(_top_candidates(values, count), expected)
        values[values == -np.inf] = -1.5  # all finite: the bound applies
        for count in (1, rows):
            expected = np.argsort(-values.reshape(-1), kind="stable")[:count]
            np.testing.assert_array_equal(_top_candidates(values, count), expected)


@pytest.fixture(scope="module")
def exported_with_lm(tiny_checkpoint, language_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx_lm") / "cif"
    return _export(tiny_checkpoint, folder, lm_path=language_model, lm_weight=LM_WEIGHT)


LM_WEIGHT = 0.8


@pytest.mark.parametrize("beam", [1, 4])
def test_onnxruntime_fuses_the_exported_lm_as_pytorch_does(
    tiny_checkpoint, language_model, exported_with_lm, audio_files, beam
):
    manifest = json.loads((exported_with_lm / "onnx_model.json").read_text())
    assert manifest["lm"]["weight"] == LM_WEIGHT and "lm_step.onnx" in manifest["files"]
    expected = Recognizer.from_pretrained(
        tiny_checkpoint, beam=beam, lm_path=str(language_model), lm_weight=LM_WEIGHT
    ).transcribe(audio_files, batch_size=3)
    got = OnnxRecognizer(exported_with_lm, beam=beam).transcribe(audio_files, batch_size=3)
    assert _outputs(got) == _outputs(expected)
    assert [t.score for t in got] == pytest.approx([t.score for t in expected], rel=1e-4, abs=1e-3)
    without = Recognizer.from_pretrained(tiny_checkpoint, beam=beam).transcribe(audio_files, batch_size=3)
    assert [t.score for t in got] != pytest.approx([t.score for t in without], rel=1e-3, abs=1e-2)
    # weight 0 leaves the LM out: the plain model's results
    unfused = OnnxRecognizer(exported_with_lm, beam=beam, lm_weight=0.0).transcribe(audio_files, batch_size=3)
    assert _outputs(unfused) == _outputs(without)


def test_the_lm_step_graph_is_quantised_and_refused_where_it_cannot_be_used(
    tiny_checkpoint, asg_checkpoint, language_model, exported, audio_files, tmp_path
):
    quantized = _export(
        tiny_checkpoint, tmp_path / "int8", quantize="int8", lm_path=language_model, lm_weight=0.5
    )
    assert not _constant_weight_products(onnx.load(str(quantized / "lm_step.onnx")).graph)
    assert all(t.ok for t in OnnxRecognizer(quantized, beam=2).transcribe(audio_files))
    with pytest.raises(ValueError, match="fairseq LM .* with CIF and CTC models"):
        export_onnx(asg_checkpoint, tmp_path / "asg", lm_path=language_model, lm_weight=0.5)
    with pytest.raises(ValueError, match="without a language model"):
        OnnxRecognizer(exported["cif"][1], lm_weight=0.5)
    with pytest.raises(ValueError, match="without a language model"):
        OnnxRecognizer(exported["ctc"][1], beam=2, lm_weight=0.5)


@pytest.mark.parametrize("beam", [1, 4])
def test_onnxruntime_ctc_prefix_search_fuses_the_exported_fairseq_lm_as_pytorch_does(
    ctc_training, language_model, audio_files, tmp_path, beam
):
    """A CTC model with a fairseq LM: the LM's step graph, one cached step per new prefix, scores
    what the whole LM scores in PyTorch; same tokens, times and scores, and the LM changes them."""
    checkpoint = ctc_training[1]
    options = {"lm_path": language_model, "lm_weight": LM_WEIGHT, "ctc_token_bonus": 1.5}
    folder = _export(checkpoint, tmp_path / "ctc_lm", **options)
    manifest = json.loads((folder / "onnx_model.json").read_text())
    assert manifest["lm"]["weight"] == LM_WEIGHT and "lm_step.onnx" in manifest["files"]
    torch_options = {**options, "lm_path": str(language_model)}
    expected = Recognizer.from_pretrained(checkpoint, beam=beam, **torch_options)
    expected = expected.transcribe(audio_files, batch_size=3)
    got = OnnxRecognizer(folder, beam=beam).transcribe(audio_files, batch_size=3)
    assert _outputs(got) == _outputs(expected)
    assert [t.score for t in got] == pytest.approx([t.score for t in expected], rel=1e-4, abs=1e-3)
    unfused = OnnxRecognizer(folder, beam=beam, lm_weight=0.0).transcribe(audio_files, batch_size=3)
    assert [t.score for t in got] != pytest.approx([t.score for t in unfused], rel=1e-3, abs=1e-2)
    assert [t.text for t in got] != [t.text for t in unfused]
    if beam > 1:  # the LM's only word wins once the beam can reach it
        assert all(set(t.text) == {FAVOURITE} for t in got)


def test_lm_prefix_scorer_scores_every_prefix_as_the_whole_lm_does(language_model, tiny_data, tmp_path):
    """Cached steps, batched by length and reached through unscored shorter prefixes, against
    the PyTorch scorer that runs the whole LM on each prefix."""
    from fairseq.data import Dictionary

    from cif_plugin.export.onnx_export import _export_lm_step
    from cif_plugin.generation.language_models import load_fairseq_lm
    from cif_plugin.generation.prefix_lm_scorers import FairseqLmPrefixScorer
    from cif_plugin.runtime.bundle import LM_GRAPH, LM_SIGNATURE, open_session
    from cif_plugin.runtime.lm_prefix_scorer import OnnxLmPrefixScorer

    dictionary = Dictionary.load(str(tiny_data / "dict.txt"))
    lm = load_fairseq_lm(str(language_model), dictionary, str(tiny_data)).eval()
    shape = _export_lm_step(lm, 64, tmp_path, 17)
    folder = tmp_path
    scorer = OnnxLmPrefixScorer(open_session(folder / LM_GRAPH, LM_SIGNATURE), shape, dictionary.eos())
    reference = FairseqLmPrefixScorer(lm, dictionary.eos(), dictionary.pad())
    rng = np.random.default_rng(0)
    batches = [
        [()],
        [(5,), (6,), (5, 7)],
        [tuple(rng.integers(4, len(dictionary), size=n)) for n in (1, 3, 3, 6)],
    ]
    for prefixes in batches:
        scorer.prepare(prefixes)
        reference.prepare(prefixes)
        for prefix in prefixes:
            for label in (4, 5, dictionary.eos()):
                assert scorer.score(prefix, label) == pytest.approx(reference.score(prefix, label), abs=1e-4)
            assert scorer.end_score(prefix) == pytest.approx(reference.end_score(prefix), abs=1e-4)
    scorer.reset()
    assert not scorer._next and not scorer._cache


@pytest.fixture(scope="module")
def arpa_for_onnx(tmp_path_factory):
    from test_ctc_lm_fusion import ARPA

    path = tmp_path_factory.mktemp("onnx_ngram") / "bigram.arpa"
    path.write_text(ARPA, encoding="utf-8")
    return path


@pytest.mark.parametrize("fused", [False, True])
def test_onnxruntime_ctc_prefix_beam_search_is_pytorchs(
    ctc_training, arpa_for_onnx, audio_files, tmp_path, fused
):
    """Prefix beam search (beam 4, a token bonus, with and without the n-gram LM): the same tokens,
    times and scores as the PyTorch recogniser."""
    checkpoint = ctc_training[1]
    options = {"lm_weight": 2.0, "ngram_lm_path": arpa_for_onnx} if fused else {}
    folder = _export(checkpoint, tmp_path / "ctc", ctc_token_bonus=1.5, **options)
    manifest = json.loads((folder / "onnx_model.json").read_text())
    assert ("ngram" in manifest) == fused and manifest["ctc_token_bonus"] == 1.5
    torch_options = {**options, "ngram_lm_path": str(arpa_for_onnx)} if fused else {}
    expected = Recognizer.from_pretrained(checkpoint, beam=4, ctc_token_bonus=1.5, **torch_options)
    expected = expected.transcribe(audio_files, batch_size=3)
    got = OnnxRecognizer(folder, beam=4).transcribe(audio_files, batch_size=3)
    assert _outputs(got) == _outputs(expected)
    assert [t.score for t in got] == pytest.approx([t.score for t in expected], rel=1e-4, abs=1e-3)
    assert any(t.tokens for t in got)  # the bonus makes an untrained model emit labels


def test_numpy_ctc_forced_alignment_is_torchaudios_and_the_best_path():
    from cif_plugin.ops.ctc import ctc_forced_align
    from cif_plugin.runtime.search import ctc_forced_spans

    rng = np.random.default_rng(0)
    for trial in range(200):
        ties = trial % 5 == 0  # small: their best path is found by brute force
        vocab, count = int(rng.integers(3, 8)), int(rng.integers(1, 4 if ties else 6))
        labels = rng.integers(1, vocab, size=count).tolist()
        repeats = sum(a == b for a, b in zip(labels, labels[1:], strict=False))
        frames = count + repeats + int(rng.integers(0, 3 if ties else 5))  # as few frames as needed, or more
        scale = 3.0 if trial % 2 else 0.01
        log_probs = torch.log_softmax(torch.from_numpy(scale * rng.normal(size=(frames, vocab))).float(), -1)
        if not ties:
            assert ctc_forced_spans(log_probs.numpy(), labels, 0) == ctc_forced_align(log_probs, labels, 0)
            continue
        # integer log-probabilities tie everywhere: the path must still be a best one (torchaudio
        # 2.11's forced_align returned a worse path on some of these)
        log_probs = torch.round(log_probs).numpy()
        spans = ctc_forced_spans(log_probs, labels, 0)
        assert [span.label for span in spans] == labels
        assert _path_score(log_probs, spans) == _best_alignment_score(log_probs, labels), trial


def _path_score(log_probs, spans) -> float:
    labels = np.zeros(len(log_probs), dtype=int)  # blank elsewhere
    for span in spans:
        labels[span.start : span.end] = span.label
    return float(log_probs[np.arange(len(log_probs)), labels].sum())


def _best_alignment_score(log_probs, labels) -> float:
    """The best score over every frame labelling that collapses to ``labels`` (brute force over the
    blank and the labels' symbols: no other symbol can be in such a labelling)."""
    import itertools

    best = -np.inf
    for path in itertools.product(sorted({0, *labels}), repeat=len(log_probs)):
        collapsed = [label for label, _ in itertools.groupby(path) if label != 0]
        if collapsed == labels:
            best = max(best, float(log_probs[np.arange(len(path)), path].sum()))
    return best


@pytest.mark.parametrize(
    "option, named",
    [
        (["--ctc-token-bonus", "1.5"], "--ctc-token-bonus"),
        (["--tail-threshold", "0.3"], "--tail-threshold"),
        (["--lm-path", "lm.pt"], "--lm-path"),
    ],
)
def test_transcribe_refuses_what_the_onnx_backend_does_not_take(exported, audio_files, option, named):
    script = Path(__file__).resolve().parents[1] / "scripts" / "transcribe.py"
    command = [sys.executable, str(script), "--model", str(exported["ctc"][1]), "--backend", "onnxruntime"]
    result = subprocess.run(
        command + option + [str(audio_files[0])], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2 and named in result.stderr and "does not take" in result.stderr

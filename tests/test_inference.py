"""The inference library: Recognizer for the three families (batched = one at a time), model
packages (round trip, float16, tampering), and bad inputs reported while good ones are transcribed."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from cif_plugin.inference import NamedAudio, PackageError, Recognizer, export_package

from speech_data import write_spoken_recording

DURATIONS = (2.2, 1.1, 3.0, 1.6, 2.6)


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(3)
    paths = []
    for index, seconds in enumerate(DURATIONS):
        path = folder / f"u{index}.wav"
        soundfile.write(str(path), 0.1 * rng.normal(size=int(seconds * 16000)), 16000)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def checkpoints(tiny_checkpoint, ctc_training, asg_checkpoint):
    return {"cif": tiny_checkpoint, "ctc": ctc_training[1], "asg": asg_checkpoint}


def _outputs(transcripts):
    return [(t.name, t.text, [(x.token, x.start, x.end) for x in t.tokens], t.error) for t in transcripts]


@pytest.mark.parametrize("family, beam", [("cif", 1), ("cif", 3), ("ctc", 1), ("ctc", 3), ("asg", 1)])
def test_batched_results_equal_one_at_a_time(checkpoints, audio_files, family, beam):
    recognizer = Recognizer.from_pretrained(checkpoints[family], beam=beam)
    batched = recognizer.transcribe(audio_files, batch_size=len(audio_files))
    alone = [recognizer.transcribe([path], batch_size=1)[0] for path in audio_files]
    assert _outputs(batched) == _outputs(alone)
    for transcript, duration in zip(batched, DURATIONS, strict=True):
        assert transcript.ok and abs(transcript.duration - duration) < 1e-3
        assert "".join(t.token for t in transcript.tokens) == transcript.text
        bounds = [(t.start, t.end) for t in transcript.tokens]
        assert all(0 <= start <= end <= duration for start, end in bounds)
        assert all(b[0] >= a[1] - 1e-9 for a, b in zip(bounds, bounds[1:], strict=False))
    if family != "ctc":  # an untrained CTC model may emit only blanks; CIF and ASG always emit
        assert any(t.tokens for t in batched)


def _results(transcripts):
    return [t.to_dict() for t in transcripts]


@pytest.mark.parametrize("family", ["cif", "ctc"])
def test_a_recognizer_with_its_own_search_decodes_as_one_built_with_it(checkpoints, audio_files, family):
    """``with_search``: the settings of a recogniser loaded with them; the original keeps its own."""
    plain = Recognizer.from_pretrained(checkpoints[family], beam=1)
    before = _outputs(plain.transcribe(audio_files))
    cif_text = Recognizer.from_pretrained(checkpoints["cif"], beam=1).transcribe(audio_files[:1])[0].text
    hotwords = [(cif_text[:2][::-1], 4.0)]  # decoded symbols, swapped: the bonus changes the scores
    built = Recognizer.from_pretrained(checkpoints[family], beam=3, hotwords=hotwords)
    variant = plain.with_search(beam=3, hotwords=hotwords)
    assert _results(variant.transcribe(audio_files)) == _results(built.transcribe(audio_files))
    assert _results(variant.transcribe(audio_files)) != _outputs(
        plain.with_search(beam=3).transcribe(audio_files)
    )
    assert _outputs(plain.transcribe(audio_files)) == before
    assert plain.generator.context_graph is None and plain.generator.beam == 1
    with pytest.raises(ValueError, match="beam 0"):
        plain.with_search(beam=0)


def test_package_decodes_like_its_checkpoint(checkpoints, audio_files, tmp_path):
    for family, checkpoint in checkpoints.items():
        package = tmp_path / family
        manifest = export_package(checkpoint, package)
        assert manifest["family"] == {"cif": "s2t_cif_transformer", "ctc": "s2t_ctc_conformer",
                                      "asg": "s2t_asg_conformer"}[family]  # fmt: skip
        assert manifest["frame_shift_seconds"] == 0.08 and manifest["sample_rate"] == 16000
        assert set(manifest["files"]) == {"model.pt", "dict.txt", "config.yaml"}
        expected = Recognizer.from_pretrained(checkpoint).transcribe(audio_files)
        assert _outputs(Recognizer.from_pretrained(package).transcribe(audio_files)) == _outputs(expected)
        half = export_package(checkpoint, tmp_path / f"{family}16", dtype="float16")
        assert half["dtype"] == "float16"
        assert (tmp_path / f"{family}16" / "model.pt").stat().st_size < 0.7 * (
            package / "model.pt"
        ).stat().st_size
        assert len(Recognizer.from_pretrained(tmp_path / f"{family}16").transcribe(audio_files)) == len(
            audio_files
        )


def test_package_needs_no_training_data_folder(tiny_checkpoint, tiny_data, audio_files, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    checkpoint = tmp_path / "model.pt"
    shutil.copyfile(tiny_checkpoint, checkpoint)
    expected = Recognizer.from_pretrained(tiny_checkpoint).transcribe(audio_files)
    export_package(checkpoint, tmp_path / "package", data_dir=data)
    shutil.rmtree(data)
    assert _outputs(Recognizer.from_pretrained(tmp_path / "package").transcribe(audio_files)) == _outputs(
        expected
    )


def test_a_missing_or_altered_package_file_is_named(tiny_checkpoint, tmp_path):
    package = tmp_path / "package"
    export_package(tiny_checkpoint, package)
    with open(package / "dict.txt", "a", encoding="utf-8") as dictionary:
        dictionary.write("x 1\n")
    with pytest.raises(PackageError, match=r"dict\.txt: altered"):
        Recognizer.from_pretrained(package)
    export_package(tiny_checkpoint, package)
    (package / "config.yaml").unlink()
    with pytest.raises(PackageError, match=r"config\.yaml: missing"):
        Recognizer.from_pretrained(package)


def test_bad_inputs_are_reported_and_the_good_ones_transcribed(tiny_checkpoint, audio_files, tmp_path):
    corrupt, empty = tmp_path / "corrupt.wav", tmp_path / "empty.wav"
    corrupt.write_bytes(b"RIFF not really a wav file")
    empty.write_bytes(b"")
    missing = tmp_path / "missing.wav"
    nan = NamedAudio("nan-samples", np.full(16000, np.nan, dtype=np.float32), 16000)
    short = NamedAudio("one-sample", np.zeros(1, dtype=np.float32), 16000)
    good = NamedAudio("good", soundfile.read(str(audio_files[0]))[0] * 1.0, 16000)
    inputs = [audio_files[1], corrupt, empty, missing, nan, short, good, audio_files[2]]
    results = Recognizer.from_pretrained(tiny_checkpoint).transcribe(inputs, batch_size=3)
    assert [r.ok for r in results] == [True, False, False, False, False, False, True, True]
    names = [str(audio_files[1]), str(corrupt), str(empty), str(missing), "nan-samples", "one-sample", "good"]
    assert [r.name for r in results] == [*names, str(audio_files[2])]
    errors = {r.name: r.error for r in results if not r.ok}
    assert "corrupt.wav: unreadable audio" in errors[str(corrupt)]
    assert "no such file" in errors[str(missing)] and "not all finite" in errors["nan-samples"]
    assert "too short" in errors["one-sample"]
    assert results[6].duration == pytest.approx(DURATIONS[0], abs=1e-3)


def test_stereo_and_other_rates_in_memory(tiny_checkpoint, audio_files):
    samples, rate = soundfile.read(str(audio_files[0]))
    stereo_44k = np.stack([samples, samples])  # (channels, samples) at 16 kHz ...
    recognizer = Recognizer.from_pretrained(tiny_checkpoint)
    mono = recognizer.transcribe([NamedAudio("mono", samples, rate)])[0]
    stereo = recognizer.transcribe([(stereo_44k, rate)])[0]
    assert stereo.name == "input0" and stereo.text == mono.text
    assert Path(recognizer.transcribe([audio_files[0]])[0].name) == audio_files[0]


def test_long_recording_is_split_at_pauses_and_keeps_its_clock(tiny_checkpoint, tmp_path):
    """Three spoken phrases with pauses, longer than max_segment_seconds: the VAD finds them where
    they were placed, and the transcript equals decoding each region alone, shifted by its start."""
    from cif_plugin.inference.segmentation import split_long_audio

    path, placed = write_spoken_recording(tmp_path)
    recording, rate = soundfile.read(str(path))
    recognizer = Recognizer.from_pretrained(tiny_checkpoint, max_segment_seconds=2.0)
    assert recording.size / rate > 2.0
    from cif_plugin.inference.audio import read_input

    waveform = read_input(path, 0)
    regions = split_long_audio(waveform, max_seconds=30.0)
    assert len(regions) == len(placed)
    for (start, end), (placed_start, placed_end) in zip(regions, placed, strict=True):
        # espeak-ng ends its files with silence, which the VAD rightly leaves out
        assert abs(start / 16000 - placed_start) < 0.2 and placed_start < end / 16000 <= placed_end + 0.2
    expected = []
    for start, end in regions:
        alone = recognizer.transcribe([NamedAudio("region", waveform[0, start:end].numpy(), 16000)])[0]
        expected += [
            (t.token, round(start / 16000 + t.start, 3), round(start / 16000 + t.end, 3))
            for t in alone.tokens
        ]
    transcript = recognizer.transcribe([path], batch_size=2)[0]
    assert transcript.ok and transcript.duration == pytest.approx(recording.size / rate, abs=1e-3)
    assert [(t.token, t.start, t.end) for t in transcript.tokens] == expected and expected


def test_sentencepiece_text_is_fairseqs_post_process():
    """Both recognisers turn symbols into text with ``symbols_to_text``; the PyTorch one used fairseq's
    post-process, which stays the oracle."""
    from fairseq.data.data_utils import post_process

    from cif_plugin.inference.results import symbols_to_text

    pieces = ["\u2581hel", "lo", "\u2581wor", "ld", "\u2581!"]
    assert symbols_to_text(pieces, True) == post_process(" ".join(pieces), "sentencepiece") == "hello world !"
    assert symbols_to_text(["九", "十"], False) == "九十"

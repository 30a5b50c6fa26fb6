"""scripts/transcribe.py over the library: every input form, every output format parsed back, and
bad files reported while the good ones are written (exit status 1)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "transcribe.py"
DURATIONS = {"a.wav": 2.0, "sub/b.flac": 1.5, "sub/deeper/c.wav": 2.5}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_audio")
    rng = np.random.default_rng(5)
    for name, seconds in DURATIONS.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(str(root / name), 0.1 * rng.normal(size=int(seconds * 16000)), 16000)
    (root / "notes.txt").write_text("not audio, not listed")
    return root


def _run(checkpoint, *args):
    command = [sys.executable, str(SCRIPT), "--model", str(checkpoint), "--beam", "1", "--no-progress", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _srt_cues(text):
    cues = []
    for block in text.strip().split("\n\n"):
        number, times, *lines = block.splitlines()
        start, end = [
            sum(float(x) * f for x, f in zip(re.split("[:,]", t), (3600, 60, 1, 0.001), strict=True))
            for t in times.split(" --> ")
        ]
        cues.append((int(number), start, end, "".join(lines)))
    return cues


def test_folder_input_in_every_format(tiny_checkpoint, corpus, tmp_path):
    outputs = {}
    for output_format in ("json", "jsonl", "text", "srt", "ctm", "tsv"):
        target = tmp_path / f"out.{output_format}"
        result = _run(tiny_checkpoint, str(corpus), "--format", output_format, "--output", str(target))
        assert result.returncode == 0, result.stderr[-3000:]
        assert not list(tmp_path.glob("*.tmp"))
        outputs[output_format] = target.read_text(encoding="utf-8")
    transcripts = json.loads(outputs["json"])
    names = sorted(str(corpus / name) for name in DURATIONS)
    assert [t["name"] for t in transcripts] == names  # recursive, audio only, sorted
    assert [json.loads(line) for line in outputs["jsonl"].splitlines()] == transcripts
    assert outputs["text"].splitlines() == [f"{t['name']}\t{t['text']}" for t in transcripts]
    tokens = [(t["name"], x["token"], x["start"], x["end"]) for t in transcripts for x in t["tokens"]]
    assert tokens, "the tiny model emits tokens on these inputs"
    ctm = [line.split() for line in outputs["ctm"].splitlines()]
    assert [(n, tok, float(s), round(float(s) + float(d), 3)) for n, _, s, d, tok, _ in ctm] == [
        (n, tok, s, pytest.approx(e, abs=1e-3)) for n, tok, s, e in tokens
    ]
    tsv = [line.split("\t") for line in outputs["tsv"].splitlines()]
    assert tsv[0] == ["name", "start", "end", "token"] and len(tsv) == len(tokens) + 1
    cues = _srt_cues(outputs["srt"])
    assert [number for number, *_ in cues] == list(range(1, len(cues) + 1))
    assert "".join(text for *_, text in cues) == "".join(t["text"] for t in transcripts)
    position = 0
    for transcript in transcripts:  # cues follow the inputs; each input's cues are monotonic inside it
        count = len(transcript["tokens"])  # single-character tokens: a cue's text has one per token
        duration = DURATIONS[str(Path(transcript["name"]).relative_to(corpus))]
        own, taken = [], 0
        while taken < count:
            own.append(cues[position])
            taken += len(cues[position][3])
            position += 1
        assert all(0 <= s <= e <= duration + 1e-3 for _, s, e, _ in own)
        assert all(a[2] <= b[1] + 1e-9 for a, b in zip(own, own[1:], strict=False))
    assert position == len(cues)


def test_list_file_and_wav_scp(tiny_checkpoint, corpus, tmp_path):
    listing = tmp_path / "files.lst"
    listing.write_text(f"{corpus / 'a.wav'}\n\n{corpus / 'sub/b.flac'}\n")
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt1 {corpus / 'sub/deeper/c.wav'}\nutt2 {corpus / 'a.wav'}\n")
    result = _run(tiny_checkpoint, "--list", str(listing), "--wav-scp", str(scp), "--format", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    names = [t["name"] for t in json.loads(result.stdout)]
    assert names == [str(corpus / "a.wav"), str(corpus / "sub/b.flac"), "utt1", "utt2"]
    piped = tmp_path / "piped.scp"
    piped.write_text("utt1 sox a.wav -t wav - |\n")
    refused = _run(tiny_checkpoint, "--wav-scp", str(piped))
    assert refused.returncode == 2 and "piped.scp:1: utt1 is a piped command" in refused.stderr


def test_bad_files_are_reported_and_the_others_written(tiny_checkpoint, corpus, tmp_path):
    corrupt, empty, missing = tmp_path / "corrupt.wav", tmp_path / "empty.wav", tmp_path / "missing.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    empty.write_bytes(b"")
    target = tmp_path / "out.jsonl"
    inputs = [corpus / "a.wav", corrupt, empty, missing, corpus / "sub/b.flac"]
    result = _run(tiny_checkpoint, *map(str, inputs), "--format", "jsonl", "--output", str(target))
    assert result.returncode == 1
    for bad in (corrupt, empty, missing):
        assert str(bad) in result.stderr
    assert "3 of 5 input(s) failed" in result.stderr
    transcripts = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [t["name"] for t in transcripts] == list(map(str, inputs))
    assert [t["error"] is None for t in transcripts] == [True, False, False, False, True]


def test_streaming_gives_the_offline_result_with_emission_times(streaming_checkpoint, corpus):
    """--streaming at the model's own 640 ms chunk: the same text and tokens as decoding each whole
    file (same chunk mask), every token stamped with the audio received when it was emitted."""
    offline = _run(streaming_checkpoint, str(corpus), "--format", "jsonl")
    streamed = _run(
        streaming_checkpoint, str(corpus), "--format", "jsonl", "--streaming", "--chunk-ms", "640"
    )
    assert offline.returncode == 0 and streamed.returncode == 0, offline.stderr + streamed.stderr
    by_name = {record["name"]: record for record in map(json.loads, offline.stdout.splitlines())}
    records = [json.loads(line) for line in streamed.stdout.splitlines()]
    assert len(records) == len(DURATIONS) and sum(len(r["tokens"]) for r in records) > 0
    for record in records:
        expected = by_name[record["name"]]
        assert record["text"] == expected["text"]
        assert [t["token"] for t in record["tokens"]] == [t["token"] for t in expected["tokens"]]
        emitted = [t["emitted_at"] for t in record["tokens"]]
        assert emitted == sorted(emitted) and all(e <= record["duration"] + 1e-6 for e in emitted)


def test_streaming_refuses_a_model_that_cannot_stream(tiny_checkpoint, corpus):
    result = _run(tiny_checkpoint, str(corpus / "a.wav"), "--streaming")
    assert result.returncode == 2 and "causal" in result.stderr

"""The server's API (scripts/serve.py, docs/server.md) through FastAPI's test client: uploads and
streams give what the library gives for the same samples, and every limit and bad input gets its
documented status or close code."""

import json
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from server_harness import SAMPLE_RATE, noise, offline, pcm16, wav_bytes
from starlette.websockets import WebSocketDisconnect

from cif_plugin.inference import Recognizer
from cif_plugin.inference.server import ServerLimits, create_app
from cif_plugin.inference.server.stream_protocol import CloseCode


@pytest.fixture(scope="module")
def recognizer(talkative_streaming_checkpoint):
    return Recognizer.from_pretrained(talkative_streaming_checkpoint, beam=1)


def _client(recognizer, **limits):
    return TestClient(create_app(recognizer, ServerLimits(**limits)))


def _upload(client, data, name="a.wav", **fields):
    return client.post(
        "/v1/transcribe", files={"file": (name, data, "application/octet-stream")}, data=fields
    )


def test_health_and_page(recognizer):
    with _client(recognizer) as client:
        health = client.get("/healthz").json()
        page = client.get("/")
    assert health["status"] == "ok" and health["streaming"] and health["chunk_ms"] == 640
    assert health["parameters"] == sum(p.numel() for p in recognizer.model.parameters())
    assert page.status_code == 200 and "/v1/stream" in page.text and "/v1/transcribe" in page.text


def test_an_upload_gives_the_library_transcript(recognizer, tmp_path):
    samples = noise(2.0, seed=1)
    with _client(recognizer) as client:
        response = _upload(client, wav_bytes(samples), name="a.wav")
        assert response.status_code == 200, response.text
        assert response.json() == offline(recognizer, samples, "a.wav")
        assert response.json()["tokens"], "the tiny model emits tokens on this audio"
        # any rate and channel count soundfile reads: resampled as the library resamples a file
        stereo = np.stack([samples[::2], samples[1::2]], axis=1)
        path = tmp_path / "b.flac"
        import soundfile

        soundfile.write(path, stereo, 8000)
        response = _upload(client, path.read_bytes(), name="b.flac")
    expected = recognizer.transcribe([path])[0].to_dict()
    assert response.status_code == 200 and response.json() == {**expected, "name": "b.flac"}


def test_per_request_beam_and_hotwords_leave_the_server_settings_alone(recognizer):
    samples = noise(2.5, seed=2)
    plain = offline(recognizer, samples)
    phrase = "".join(token["token"] for token in plain["tokens"][:2])[::-1]  # two decoded symbols, swapped
    hotwords = [(phrase, 5.0)]
    with _client(recognizer) as client:
        biased = _upload(client, wav_bytes(samples), name="upload", beam="3", hotwords=f"{phrase} 5.0")
        again = _upload(client, wav_bytes(samples), name="upload")
    assert biased.status_code == 200, biased.text
    assert biased.json() == offline(recognizer.with_search(3, hotwords), samples)
    assert again.json() == plain and recognizer.options.beam == 1 and recognizer.options.hotwords is None


def _truncated_wav():
    data = wav_bytes(noise(1.0, seed=3))
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "data, fields, limits, status, says",
    [
        (b"", {}, {}, 400, "empty upload"),
        (_truncated_wav(), {}, {}, 400, "truncated WAV"),
        ("plain text, not audio\n".encode(), {}, {}, 415, "not an audio file"),
        (wav_bytes(noise(2.0, seed=4)), {}, {"max_upload_bytes": 4096}, 413, "over the limit"),
        (wav_bytes(noise(2.0, seed=4)), {}, {"max_upload_seconds": 1.5}, 413, "2.0 s of audio"),
        (wav_bytes(noise(0.01, seed=4)), {}, {}, 422, "too short"),
        (wav_bytes(noise(1.0, seed=4)), {"beam": "0"}, {}, 400, "beam 0"),
        (wav_bytes(noise(1.0, seed=4)), {"beam": "50"}, {"max_beam": 20}, 400, "from 1 to 20"),
        (wav_bytes(noise(1.0, seed=4)), {"beam": "wide"}, {}, 400, "expected int"),
        (wav_bytes(noise(1.0, seed=4)), {"hotwords": "五六 -1"}, {}, 400, "scores must be > 0"),
    ],
)
def test_bad_uploads_get_their_status(recognizer, data, fields, limits, status, says):
    with _client(recognizer, **limits) as client:
        response = _upload(client, data, name="bad.wav", **fields)
    assert response.status_code == status, response.text
    assert says in response.json()["detail"]


def test_an_upload_without_a_file_field(recognizer):
    with _client(recognizer) as client:
        response = client.post("/v1/transcribe", data={"beam": "1"})
    assert response.status_code == 400 and "'file'" in response.json()["detail"]


def _stream(websocket, samples, encoding="pcm_s16le", piece_seconds=0.1, **header):
    """Header, audio in pieces, end: (messages received, in order)."""
    websocket.send_text(json.dumps({"sample_rate": SAMPLE_RATE, "encoding": encoding, **header}))
    messages = [websocket.receive_json()]
    piece = int(piece_seconds * SAMPLE_RATE)
    for start in range(0, len(samples), piece):
        block = samples[start : start + piece]
        websocket.send_bytes(pcm16(block) if encoding == "pcm_s16le" else block.astype("<f4").tobytes())
    websocket.send_text(json.dumps({"type": "end"}))
    while messages[-1]["type"] != "final":
        messages.append(websocket.receive_json())
    with pytest.raises(WebSocketDisconnect) as closed:
        websocket.receive_text()
    assert closed.value.code == CloseCode.NORMAL
    return messages


@pytest.mark.parametrize("encoding", ["pcm_s16le", "float32"])
def test_a_stream_gives_partials_then_the_offline_result(recognizer, encoding):
    samples = noise(3.0, seed=5)
    with _client(recognizer) as client, client.websocket_connect("/v1/stream") as websocket:
        messages = _stream(websocket, samples, encoding)
    ready, *partials, final = messages
    assert ready == {"type": "ready", "chunk_ms": 640, "sample_rate": SAMPLE_RATE, "encoding": encoding}
    assert partials and all(m["type"] == "partial" for m in partials)
    expected = offline(recognizer, samples)
    assert final["text"] == expected["text"]
    assert [(t["token"], t["start"], t["end"]) for t in final["tokens"]] == [
        (t["token"], t["start"], t["end"]) for t in expected["tokens"]
    ]
    streamed = [token for partial in partials for token in partial["tokens"]]
    assert streamed == final["tokens"][: len(streamed)]  # greedy: an emitted token is final
    assert [m["seconds"] for m in partials] == sorted(m["seconds"] for m in partials)


def test_a_stream_with_its_own_beam_and_hotwords(recognizer):
    samples = noise(2.5, seed=6)
    phrase = offline(recognizer, samples)["text"][:2][::-1]
    with _client(recognizer) as client, client.websocket_connect("/v1/stream") as websocket:
        final = _stream(websocket, samples, beam=3, hotwords=[[phrase, 5.0]])[-1]
    assert final["text"] == offline(recognizer.with_search(3, [(phrase, 5.0)]), samples)["text"]


def _refused(websocket):
    """(error message, close code) of a stream the server ends (partial results before it skipped)."""
    error = websocket.receive_json()
    while error["type"] == "partial":
        error = websocket.receive_json()
    with pytest.raises(WebSocketDisconnect) as closed:
        websocket.receive_text()
    assert error["type"] == "error" and error["code"] == closed.value.code
    return error["message"], closed.value.code


HEADER = json.dumps({"sample_rate": SAMPLE_RATE})


@pytest.mark.parametrize(
    "sends, limits, code, says",
    [
        ([json.dumps({"sample_rate": 8000})], {}, CloseCode.UNSUPPORTED, "sample_rate 8000"),
        ([json.dumps({"encoding": "mp3"})], {}, CloseCode.UNSUPPORTED, "encoding 'mp3'"),
        ([json.dumps({"language": "zh"})], {}, CloseCode.UNSUPPORTED, "unknown header field(s): language"),
        ([json.dumps({"chunk_ms": 100})], {}, CloseCode.UNSUPPORTED, "not a positive multiple"),
        ([json.dumps({"beam": 99})], {}, CloseCode.POLICY, "beam 99"),
        ([json.dumps({"hotwords": "五六"})], {}, CloseCode.INVALID, "hotwords"),
        ([b"\x00\x01"], {}, CloseCode.POLICY, "header before any audio"),
        (["{not json"], {}, CloseCode.INVALID, "not JSON"),
        ([HEADER, b"\x00\x01\x02"], {}, CloseCode.INVALID, "whole number of pcm_s16le samples"),
        ([HEADER, json.dumps({"type": "pause"})], {}, CloseCode.UNSUPPORTED, "unknown message"),
        ([HEADER, bytes(4096)], {"max_message_bytes": 2048}, CloseCode.TOO_BIG, "4096 bytes"),
        ([HEADER, bytes(64000), bytes(64000)], {"max_stream_seconds": 3.0}, CloseCode.TOO_BIG, "3 s"),
        ([HEADER], {"idle_seconds": 0.3}, CloseCode.POLICY, "idle for 0.3 s"),
    ],
)
def test_bad_streams_get_their_close_code(recognizer, sends, limits, code, says):
    with _client(recognizer, **limits) as client, client.websocket_connect("/v1/stream") as websocket:
        for message in sends:
            if isinstance(message, bytes):
                websocket.send_bytes(message)
            else:
                websocket.send_text(message)
            if message is HEADER:
                assert websocket.receive_json()["type"] == "ready"
        message, closed_with = _refused(websocket)
    assert closed_with == code and says in message


def test_streams_beyond_the_limit_are_refused_until_one_ends(recognizer):
    with _client(recognizer, max_streams=1) as client:
        with client.websocket_connect("/v1/stream") as first:
            first.send_text(HEADER)
            assert first.receive_json()["type"] == "ready"
            with client.websocket_connect("/v1/stream") as second:
                message, code = _refused(second)
            assert code == CloseCode.TRY_LATER and "try again later" in message
            assert client.get("/healthz").json()["open_streams"] == 1
            first.send_text(json.dumps({"type": "end"}))
            assert first.receive_json()["type"] == "final"
        with client.websocket_connect("/v1/stream") as third:
            assert _stream(third, noise(1.0, seed=7))[-1]["type"] == "final"


def test_a_model_that_cannot_stream_serves_uploads_and_refuses_streams(tiny_checkpoint):
    recognizer = Recognizer.from_pretrained(tiny_checkpoint, beam=1)
    with _client(recognizer) as client:
        health = client.get("/healthz").json()
        assert not health["streaming"] and "causal" in health["streaming_error"]
        assert _upload(client, wav_bytes(noise(1.5, seed=8))).status_code == 200
        with client.websocket_connect("/v1/stream") as websocket:
            message, code = _refused(websocket)
    assert code == CloseCode.UNSUPPORTED and "cannot stream" in message


def test_decoding_does_not_block_the_event_loop(recognizer, monkeypatch):
    """An upload held inside the decoder while the health check answers: the decode runs in the pool."""
    decoding, release = threading.Event(), threading.Event()
    original = Recognizer.transcribe

    def held(self, *args, **kwargs):
        decoding.set()
        assert release.wait(30)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Recognizer, "transcribe", held)
    with _client(recognizer) as client:
        results = {}
        upload = threading.Thread(
            target=lambda: results.update(r=_upload(client, wav_bytes(noise(1.0, seed=9))))
        )
        upload.start()
        assert decoding.wait(30)
        assert client.get("/healthz").status_code == 200  # answered while the upload is decoding
        assert upload.is_alive()
        release.set()
        upload.join(30)
    assert results["r"].status_code == 200

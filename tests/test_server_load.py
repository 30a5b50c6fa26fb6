"""The server under load on loopback: 8 websocket streams fed in real time and 20 uploads at once
against the tiny streaming model. Nothing is dropped, every result equals the library's decode of the
same samples, and the final-result latency after end of stream is printed (``pytest -s``)."""

import asyncio
import json
import time

import httpx
import numpy as np
import websockets
from server_harness import SAMPLE_RATE, noise, offline, pcm16, running_server, wav_bytes

from cif_plugin.inference import Recognizer
from cif_plugin.inference.server import ServerLimits, create_app

STREAMS, UPLOADS, PIECE_SECONDS = 8, 20, 0.1


async def _stream(url: str, samples: np.ndarray):
    """(final message, seconds from sending the end message to receiving the final result)."""
    async with websockets.connect(f"ws://{url}/v1/stream") as websocket:
        await websocket.send(json.dumps({"sample_rate": SAMPLE_RATE, "encoding": "pcm_s16le"}))
        assert json.loads(await websocket.recv())["type"] == "ready"
        piece = int(PIECE_SECONDS * SAMPLE_RATE)
        partials = []

        async def collect():
            while True:
                message = json.loads(await websocket.recv())
                if message["type"] != "partial":
                    return message
                partials.append(message)

        receiver = asyncio.create_task(collect())
        for start in range(0, len(samples), piece):  # as a microphone would send it
            await websocket.send(pcm16(samples[start : start + piece]))
            await asyncio.sleep(PIECE_SECONDS)
        ended = time.perf_counter()
        await websocket.send(json.dumps({"type": "end"}))
        final = await receiver
        latency = time.perf_counter() - ended
        assert final["type"] == "final", final
        assert [t for p in partials for t in p["tokens"]] == final["tokens"][
            : sum(len(p["tokens"]) for p in partials)
        ]
        return final, latency


async def _upload(client: httpx.AsyncClient, url: str, samples: np.ndarray, name: str):
    started = time.perf_counter()
    response = await client.post(f"http://{url}/v1/transcribe", files={"file": (name, wav_bytes(samples))})
    assert response.status_code == 200, response.text
    return response.json(), time.perf_counter() - started


async def _load(url, stream_audio, upload_audio):
    async with httpx.AsyncClient(timeout=120) as client:
        streams = [_stream(url, samples) for samples in stream_audio]
        uploads = [_upload(client, url, samples, f"u{i}.wav") for i, samples in enumerate(upload_audio)]
        return await asyncio.gather(*streams, *uploads)


def _percentiles(values):
    return {p: float(np.percentile(values, p)) for p in (50, 90)}


def test_eight_streams_and_twenty_uploads_at_once(talkative_streaming_checkpoint):
    recognizer = Recognizer.from_pretrained(talkative_streaming_checkpoint, beam=1)
    stream_audio = [noise(2.0 + 0.25 * i, seed=100 + i) for i in range(STREAMS)]
    upload_audio = [noise(1.0 + 0.1 * i, seed=200 + i) for i in range(UPLOADS)]
    expected_streams = [offline(recognizer, samples) for samples in stream_audio]
    expected_uploads = [offline(recognizer, s, f"u{i}.wav") for i, s in enumerate(upload_audio)]
    app = create_app(recognizer, ServerLimits(max_streams=STREAMS, workers=2))
    with running_server(app) as url:
        results = asyncio.run(asyncio.wait_for(_load(url, stream_audio, upload_audio), timeout=300))
    streamed, uploaded = results[:STREAMS], results[STREAMS:]
    for (final, _), expected in zip(streamed, expected_streams, strict=True):
        assert final["text"] == expected["text"]
        assert [t["token"] for t in final["tokens"]] == [t["token"] for t in expected["tokens"]]
    assert [result for result, _ in uploaded] == expected_uploads
    assert sum(len(e["tokens"]) for e in expected_streams + expected_uploads) > 0
    stream_latency = _percentiles([latency for _, latency in streamed])
    upload_latency = _percentiles([latency for _, latency in uploaded])
    print(
        f"\n{STREAMS} streams + {UPLOADS} uploads: final result after end of stream "
        f"p50 {stream_latency[50] * 1000:.0f} ms, p90 {stream_latency[90] * 1000:.0f} ms; "
        f"upload round trip p50 {upload_latency[50] * 1000:.0f} ms, p90 {upload_latency[90] * 1000:.0f} ms"
    )

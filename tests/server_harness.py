"""Helpers of the server tests: test audio, a uvicorn server on a free loopback port in a thread, and
the oracle (the library decoding the same samples)."""

import io
import socket
import threading
import time
from contextlib import contextmanager

import numpy as np
import soundfile
import uvicorn

from cif_plugin.inference import NamedAudio

SAMPLE_RATE = 16000


def noise(seconds: float, seed: int) -> np.ndarray:
    """(n,) float32 samples the tiny test models emit tokens on, exactly representable as 16-bit PCM."""
    samples = 0.1 * np.random.default_rng(seed).normal(size=int(seconds * SAMPLE_RATE))
    return (np.round(np.clip(samples, -1, 1) * 32767) / 32768).astype(np.float32)


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A float WAV file of the samples (read back exactly)."""
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, sample_rate, format="WAV", subtype="FLOAT")
    return buffer.getvalue()


def pcm16(samples: np.ndarray) -> bytes:
    return np.round(samples * 32768).clip(-32768, 32767).astype("<i2").tobytes()


def offline(recognizer, samples: np.ndarray, name: str = "upload") -> dict:
    """The library's transcript of the samples (the server's oracle)."""
    return recognizer.transcribe([NamedAudio(name, samples, SAMPLE_RATE)])[0].to_dict()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(app):
    """``app`` served by uvicorn on 127.0.0.1 in a thread; yields its base URL, stops on exit."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)

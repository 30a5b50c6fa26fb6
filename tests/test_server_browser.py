"""The page in a real browser: headless Debian chromium, driven by Playwright, against
``scripts/serve.py`` running the tiny streaming model. It uploads a file and sees the library's
transcript, plays the audio from a clicked token, then streams a wav file through chromium's fake
microphone and sees the partial, then the final transcript, which must equal the library's decode of
exactly the samples the page sent.

``SERVER_SCREENSHOT_DIR=<folder>`` keeps the screenshots of a run."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile
from server_harness import free_port, noise, offline

from cif_plugin.inference import Recognizer

CHROMIUM = shutil.which("chromium")
SERVE = Path(__file__).resolve().parents[1] / "scripts" / "serve.py"

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make install)")


@pytest.fixture(scope="module")
def server(talkative_streaming_checkpoint):
    port = free_port()
    command = [
        sys.executable,
        str(SERVE),
        "--model",
        str(talkative_streaming_checkpoint),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert process.poll() is None, process.stdout.read()
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "serve.py did not answer within 120 s"
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=30)


def _keep(path: Path) -> None:
    folder = os.environ.get("SERVER_SCREENSHOT_DIR")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(folder) / path.name)


def test_the_page_transcribes_a_file_and_the_microphone(server, talkative_streaming_checkpoint, tmp_path):
    from playwright.sync_api import sync_playwright

    recognizer = Recognizer.from_pretrained(talkative_streaming_checkpoint, beam=1)
    upload = tmp_path / "upload.wav"
    soundfile.write(upload, noise(2.5, seed=11), 16000, subtype="FLOAT")
    expected = recognizer.transcribe([upload])[0]
    microphone = tmp_path / "microphone.wav"
    soundfile.write(microphone, noise(3.0, seed=12), 16000, subtype="PCM_16")
    arguments = [
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={microphone}%noloop",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=arguments)
        page = browser.new_page()
        page.goto(server)
        page.wait_for_function("document.getElementById('server-status').textContent.includes('streams in')")

        page.set_input_files("#file", str(upload))
        page.click("#transcribe")
        page.wait_for_function("document.getElementById('upload-status').textContent.includes('of audio in')")
        assert page.inner_text("#upload-text") == expected.text and expected.tokens
        spans = page.locator("#upload-tokens span")
        assert spans.count() == len(expected.tokens)
        token = expected.tokens[len(expected.tokens) // 2]
        spans.nth(len(expected.tokens) // 2).click()
        playing_from = f"(a => !a.paused && a.currentTime >= {token.start - 1e-3})"
        page.wait_for_function(playing_from + "(document.getElementById('upload-audio'))")
        page.screenshot(path=str(tmp_path / "server_page_upload.png"), full_page=True)
        _keep(tmp_path / "server_page_upload.png")

        page.click("#record")
        page.wait_for_function(
            "document.getElementById('live-partial').textContent.length > 0", timeout=30000
        )
        partial = page.inner_text("#live-partial")
        page.screenshot(path=str(tmp_path / "server_page_partial.png"), full_page=True)
        _keep(tmp_path / "server_page_partial.png")
        page.wait_for_timeout(3500)  # the rest of the file (then silence)
        page.click("#stop")
        page.wait_for_function("document.getElementById('live-status').textContent.startsWith('final')")
        final = page.inner_text("#live-final")
        sent = np.array(page.evaluate("window.recordedSamples"), dtype=np.float32) / 32768
        page.screenshot(path=str(tmp_path / "server_page_final.png"), full_page=True)
        _keep(tmp_path / "server_page_final.png")
        browser.close()
    assert len(sent) > 3.0 * 16000  # the whole file arrived
    assert final == offline(recognizer, sent)["text"] and final.startswith(partial)

"""The recognition server: file uploads, websocket streams, a health check and the page
(docs/server.md).

Decoding runs in a pool of ``ServerLimits.workers`` threads, never on the event loop: PyTorch releases
the interpreter lock inside its operators, so the threads decode in parallel while sharing one copy
of the model (a process pool would hold one model per process and could not keep a stream's session,
which lives between messages, without pinning each stream to a process). A stream's messages are
decoded one after the other, in order, because its handler awaits each before reading the next.
"""

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Optional

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile

from ...ops.hotwords import parse_hotword_lines
from ...tasks.fbank_features import SAMPLE_RATE
from ..recognizer import Recognizer
from .limits import ServerLimits
from .stream_protocol import (
    CloseCode,
    StreamHeader,
    StreamRefused,
    decode_audio,
    is_end_message,
    parse_header,
    token_records,
)
from .uploads import UploadRejected, read_upload

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("page.html")
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the option fields around the file


class _StreamSlots:
    """How many streams are open; one more than ``limit`` is refused, never queued. Only the event
    loop's thread touches it."""

    def __init__(self, limit: int):
        self.limit, self.open = limit, 0

    def take(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open -= 1


def _streaming_error(recognizer: Recognizer) -> Optional[str]:
    """Why the model cannot stream, or None when it can."""
    try:
        recognizer.stream()
    except ValueError as error:
        return str(error)
    return None


def _request_recognizer(recognizer: Recognizer, beam, hotwords, hotword_score, limits: ServerLimits):
    """The server's recogniser with a request's own search settings (ValueError when they are bad)."""
    if beam is not None and not 1 <= beam <= limits.max_beam:
        raise ValueError(f"beam {beam}: an integer from 1 to {limits.max_beam}")
    if beam is None and hotwords is None and hotword_score is None:
        return recognizer
    return recognizer.with_search(beam, hotwords, hotword_score)


def create_app(recognizer: Recognizer, limits: Optional[ServerLimits] = None) -> FastAPI:
    """A FastAPI application serving ``recognizer`` within ``limits`` (default: ``ServerLimits()``)."""
    limits = limits or ServerLimits()
    pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="decode")
    slots = _StreamSlots(limits.max_streams)
    streaming_error = _streaming_error(recognizer)
    page = PAGE.read_text(encoding="utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="cif-hieradist recognition server", lifespan=lifespan)

    async def in_pool(function, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, partial(function, *args))

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        """The page: upload a file or speak into the microphone."""
        return page

    @app.get("/healthz")
    async def healthz() -> dict:
        """The server is up; what it serves and how busy its streams are."""
        model = recognizer.model
        return {
            "status": "ok",
            "model": type(model).__name__,
            "parameters": sum(p.numel() for p in model.parameters()),
            "beam": recognizer.options.beam,
            "streaming": streaming_error is None,
            "streaming_error": streaming_error,
            "chunk_ms": round(model.encoder.chunk_size * recognizer.frame_seconds * 1000),
            "open_streams": slots.open,
            "max_streams": limits.max_streams,
            "max_upload_bytes": limits.max_upload_bytes,
            "max_upload_seconds": limits.max_upload_seconds,
        }

    def transcribe_upload(name: str, data: bytes, beam, hotwords, hotword_score) -> dict:
        audio = read_upload(name, data, limits)
        try:
            phrases = None if hotwords is None else parse_hotword_lines(hotwords, "hotwords")
            chosen = _request_recognizer(recognizer, beam, phrases, hotword_score, limits)
        except ValueError as error:
            raise UploadRejected(400, str(error)) from None
        transcript = chosen.transcribe([audio])[0]
        if not transcript.ok:
            raise UploadRejected(422, transcript.error)
        return transcript.to_dict()

    @app.post("/v1/transcribe")
    async def transcribe(request: Request):
        """Multipart form: ``file`` (any audio soundfile reads), optional ``beam``, ``hotwords``
        (one phrase a line, optional score) and ``hotword_score``. Returns the transcript: text,
        tokens with start and end times, score, duration."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limits.max_upload_bytes + FORM_OVERHEAD_BYTES:
                message = f"upload of {declared} bytes, over the limit of {limits.max_upload_bytes}"
                return JSONResponse({"detail": message}, status_code=413)
        try:
            async with request.form(max_files=1, max_fields=8) as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise UploadRejected(400, "no file: send the audio as the multipart field 'file'")
                data = await upload.read(limits.max_upload_bytes + 1)
                beam = _optional(form, "beam", int)
                hotword_score = _optional(form, "hotword_score", float)
                hotwords = form.get("hotwords") or None
                name = upload.filename or "upload"
            return await in_pool(transcribe_upload, name, data, beam, hotwords, hotword_score)
        except UploadRejected as rejected:
            return JSONResponse({"detail": rejected.message}, status_code=rejected.status)

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket):
        """One streaming session per connection (protocol: stream_protocol.py, docs/server.md)."""
        await websocket.accept()
        if not slots.take():
            message = f"all {limits.max_streams} stream slots are taken: try again later"
            await _refuse(websocket, StreamRefused(CloseCode.TRY_LATER, message))
            return
        try:
            await _serve_stream(websocket)
        except StreamRefused as refused:
            await _refuse(websocket, refused)
        except WebSocketDisconnect:
            pass
        except Exception as error:  # a decoding failure ends this stream, not the server
            logger.exception("stream failed")
            await _refuse(websocket, StreamRefused(CloseCode.INTERNAL, f"decoding failed: {error}"))
        finally:
            slots.give_back()

    async def receive(websocket: WebSocket) -> dict:
        try:
            message = await asyncio.wait_for(websocket.receive(), limits.idle_seconds)
        except asyncio.TimeoutError:
            raise StreamRefused(CloseCode.POLICY, f"idle for {limits.idle_seconds:g} s: closed") from None
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        size = len(message.get("bytes") or b"") + len(message.get("text") or "")
        if size > limits.max_message_bytes:
            raise StreamRefused(
                CloseCode.TOO_BIG, f"a message of {size} bytes, over the limit of {limits.max_message_bytes}"
            )
        return message

    def open_session(header: StreamHeader):
        try:
            chosen = _request_recognizer(
                recognizer, header.beam, header.hotwords, header.hotword_score, limits
            )
            return chosen.stream(header.chunk_ms)
        except ValueError as error:
            raise StreamRefused(CloseCode.UNSUPPORTED, str(error)) from None

    def feed(session, samples):
        tokens = session.accept_waveform(samples)
        return tokens, (session.transcript.text if tokens else None)

    def finish(session):
        session.finalize()
        return session.transcript, session.emitted

    async def _serve_stream(websocket: WebSocket) -> None:
        if streaming_error is not None:
            raise StreamRefused(CloseCode.UNSUPPORTED, f"this model cannot stream: {streaming_error}")
        header = parse_header((await receive(websocket)).get("text"), limits)
        session = await in_pool(open_session, header)
        chunk_ms = round(session.chunk_size * recognizer.frame_seconds * 1000)
        ready = {
            "type": "ready",
            "chunk_ms": chunk_ms,
            "sample_rate": SAMPLE_RATE,
            "encoding": header.encoding,
        }
        await websocket.send_json(ready)
        received = 0
        while True:
            message = await receive(websocket)
            if message.get("bytes") is not None:
                samples = decode_audio(message["bytes"], header.encoding)
                received += len(samples)
                if received > limits.max_stream_seconds * SAMPLE_RATE:
                    message = f"stream over the limit of {limits.max_stream_seconds:g} s of audio"
                    raise StreamRefused(CloseCode.TOO_BIG, message)
                tokens, text = await in_pool(feed, session, samples)
                if tokens:
                    partial_result = {"type": "partial", "text": text, "tokens": token_records(tokens)}
                    await websocket.send_json({**partial_result, "seconds": round(received / SAMPLE_RATE, 3)})
            elif is_end_message(message.get("text") or ""):
                transcript, emitted = await in_pool(finish, session)
                final = {"type": "final", "text": transcript.text, "tokens": token_records(emitted)}
                await websocket.send_json({**final, "duration": transcript.duration})
                await websocket.close(CloseCode.NORMAL)
                return

    return app


def _optional(form, field: str, kind):
    value = form.get(field)
    if value is None or value == "":
        return None
    try:
        return kind(value)
    except ValueError:
        raise UploadRejected(400, f"{field} {value!r}: expected {kind.__name__}") from None


async def _refuse(websocket: WebSocket, refused: StreamRefused) -> None:
    """Send the reason as an ``error`` message, then close with its code (the client may be gone)."""
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "message": refused.message, "code": refused.code})
        await websocket.close(refused.code, reason=refused.message[:120])

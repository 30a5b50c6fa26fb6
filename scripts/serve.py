"""Serve a model over HTTP and websockets, with a page to try it (docs/server.md).

    POST /v1/transcribe   an audio file (multipart field "file"; optional beam, hotwords) -> JSON
    WS   /v1/stream       16 kHz PCM in, partial and final results out
    GET  /healthz         status, model, open streams
    GET  /                the page: upload a file or speak into the microphone

The server binds to 127.0.0.1 unless --host says otherwise. Live microphone streaming needs a
chunk-causal model (``egs/synthetic_zh/run.sh --streaming``); any model serves uploads.

Usage: python scripts/serve.py --model egs/synthetic_zh/exp/package [--port 8000]
"""

import argparse
import logging
import os
import sys
from typing import List, Optional

import torch
import uvicorn

from cif_plugin.inference.cli import add_model_arguments, recognizer_from_args
from cif_plugin.inference.server import ServerLimits, create_app

__all__ = ["main"]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_model_arguments(parser)
    parser.set_defaults(beam=1)
    defaults = ServerLimits()
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--workers", type=int, default=defaults.workers, help="decoding threads (requests beyond them wait)"
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=defaults.max_upload_bytes / 2**20, help="largest upload (MiB)"
    )
    parser.add_argument(
        "--max-upload-seconds",
        type=float,
        default=defaults.max_upload_seconds,
        help="longest upload (s of audio)",
    )
    parser.add_argument(
        "--max-streams", type=int, default=defaults.max_streams, help="websocket streams decoded at once"
    )
    parser.add_argument(
        "--max-stream-seconds",
        type=float,
        default=defaults.max_stream_seconds,
        help="longest stream (s of audio)",
    )
    parser.add_argument(
        "--idle-seconds", type=float, default=defaults.idle_seconds, help="close a stream silent this long"
    )
    parser.add_argument(
        "--max-beam", type=int, default=defaults.max_beam, help="largest beam a request may ask for"
    )
    parser.add_argument("--log-level", default="info", help="uvicorn's log level")
    args = parser.parse_args(argv)
    limits = ServerLimits(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_upload_seconds=args.max_upload_seconds,
        max_streams=args.max_streams,
        max_stream_seconds=args.max_stream_seconds,
        idle_seconds=args.idle_seconds,
        max_beam=args.max_beam,
        workers=args.workers,
    )
    # the decoding threads share the cores instead of each asking for all of them
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args.workers))
    logging.basicConfig(level=logging.INFO)
    app = create_app(recognizer_from_args(args), limits)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        ws_max_size=4 * limits.max_message_bytes,  # larger messages reach the app's own 1009 refusal
        ws_ping_interval=20.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

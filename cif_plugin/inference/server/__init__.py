"""The recognition server over a :class:`~cif_plugin.inference.Recognizer` (``scripts/serve.py``,
docs/server.md): ``POST /v1/transcribe``, ``WS /v1/stream``, ``GET /healthz`` and the page at ``/``.
Needs fastapi and uvicorn; nothing else in the plugin imports this package."""

from .app import create_app
from .limits import ServerLimits

__all__ = ["ServerLimits", "create_app"]

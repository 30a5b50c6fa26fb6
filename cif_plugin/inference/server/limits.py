"""What the server accepts: upload size and duration, concurrent streams, idle time (docs/server.md)."""

from dataclasses import dataclass

__all__ = ["ServerLimits"]


@dataclass(frozen=True)
class ServerLimits:
    """Limits of one server; every one is enforced with a documented refusal (docs/server.md).

    Attributes:
        max_upload_bytes (int): largest upload, in bytes (413 beyond it).
        max_upload_seconds (float): longest upload, in seconds of audio (413 beyond it).
        max_streams (int): websocket streams decoded at once; one more is closed with 1013.
        max_stream_seconds (float): longest stream, in seconds of audio (closed with 1009 beyond it).
        max_message_bytes (int): largest websocket message (closed with 1009 beyond it).
        idle_seconds (float): a stream that sends nothing for this long is closed with 1008.
        max_beam (int): largest beam a request may ask for (400 / 1008 beyond it).
        workers (int): threads that decode (requests beyond them wait their turn).
    """

    max_upload_bytes: int = 50 * 1024 * 1024
    max_upload_seconds: float = 600.0
    max_streams: int = 4
    max_stream_seconds: float = 600.0
    max_message_bytes: int = 1024 * 1024
    idle_seconds: float = 30.0
    max_beam: int = 20
    workers: int = 2

    def __post_init__(self):
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"server limit {name} must be positive, got {value}")

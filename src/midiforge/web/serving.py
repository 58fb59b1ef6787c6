"""Serving the app with uvicorn on 127.0.0.1, with bounds on what one client may hold.

uvicorn alone never times out a request whose line and headers trickle in (it only closes
idle keep-alive connections), so :class:`BoundedH11Protocol` gives every request head a
deadline: a connection that has not sent a complete request head within ``head_seconds`` of
opening, or of its previous response, is closed. The body has its own deadline, kept by the
route that reads it (:func:`midiforge.web.uploads.read_body`). uvicorn's parser buffers at
most :data:`MAX_HEAD_BYTES` of an incomplete head (a head that arrives in one read may be
larger; one of a few hundred KiB is refused), idle keep-alive connections close after
:data:`KEEP_ALIVE_S`, and at most :data:`MAX_CONNECTIONS` connections are served at once
(uvicorn answers 503 beyond).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

from midiforge.errors import MidiforgeError
from midiforge.web.config import HOST, WebConfig

KEEP_ALIVE_S = 5
MAX_HEAD_BYTES = 16 * 1024  # request line + headers; the page sends under 2 KiB
MAX_CONNECTIONS = 64


def bounded_protocol(head_seconds: float) -> type:
    """uvicorn's h11 protocol with a deadline on every request head (see the module doc)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            waiting_after = self.cycle  # a new request replaces it once its head is complete
            self._head_timer = self.loop.call_later(head_seconds, self._late, waiting_after)

        def _late(self, waiting_after: Any) -> None:
            if self.cycle is waiting_after and not self.transport.is_closing():
                self.transport.close()  # no complete request head in time: a slow client

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            self._arm()  # before the next (maybe pipelined) request replaces the cycle
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
            super().connection_lost(exc)

    return BoundedH11Protocol


def check_port(port: int) -> None:
    """Fail with a message naming ``--port`` when ``port`` is out of range or taken."""
    if not 1 <= port <= 65535:
        raise MidiforgeError(f"--port {port}: use a TCP port in 1..65535, e.g. 7860")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # as uvicorn binds: connections of a server just stopped (TIME_WAIT) do not count
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            raise MidiforgeError(
                f"--port {port}: the port is in use on {HOST}; pass another with --port"
            ) from None


def serve(config: WebConfig, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve the page on ``http://127.0.0.1:<port>`` until interrupted (Ctrl-C).

    ``on_ready`` gets the page's URL once the options are checked, just before listening (the
    command prints it; library code does not print).
    """
    import uvicorn

    from midiforge.web.server import create_app

    if not config.job_seconds > 0:
        raise MidiforgeError(f"--job-seconds {config.job_seconds}: use a positive number")
    check_port(config.port)
    app = create_app(config)
    if on_ready is not None:
        on_ready(f"http://{HOST}:{config.port}/")
    uvicorn.run(
        app,
        host=HOST,
        port=config.port,
        log_level="warning",
        http=bounded_protocol(config.head_seconds),
        timeout_keep_alive=KEEP_ALIVE_S,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        limit_concurrency=MAX_CONNECTIONS,
    )

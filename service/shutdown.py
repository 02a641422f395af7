"""Graceful shutdown: on SIGTERM, refuse new work, finish what is in flight, end streams with 1001, exit 0.

uvicorn's own shutdown closes open WebSockets with 1012 at once and re-raises the signal (exit 143),
so the drain runs first, while the server still serves: ``/ready`` turns 503 (load balancers stop
sending), new recognition requests get 503 ``shutting_down``, open streams send their final result
and close with 1001, and requests in flight finish, for up to ``ASR_DRAIN_SECONDS``. Then the
inference worker stops, so whatever is still waiting for it fails fast with 503 ``shutting_down``,
as does an upload still arriving, and uvicorn shuts down. A second signal cuts the drain short, with
the same answers at once; a third stops without them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import uvicorn
from starlette.applications import Starlette
from starlette.types import ASGIApp, Receive, Scope, Send

from service.access import PROBES
from service.errors import error_response

log = logging.getLogger(__name__)


class Drain:
    """The work in flight, and whether the service has stopped taking more."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.in_flight = 0
        self.started = asyncio.Event()
        self.expired = asyncio.Event()
        """Set when the drain time is up (or cut short): what still runs is answered 503."""
        self._hurry = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def draining(self) -> bool:
        return self.started.is_set()

    @contextmanager
    def work(self) -> Iterator[None]:
        self.in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self._idle.set()

    async def run(self) -> None:
        """Stop taking work and wait for what is in flight, up to ``seconds`` or until :meth:`hurry`."""
        self.started.set()
        log.info("draining: %d requests and streams in flight, up to %g s", self.in_flight, self.seconds)
        idle, hurry = asyncio.ensure_future(self._idle.wait()), asyncio.ensure_future(self._hurry.wait())
        await asyncio.wait({idle, hurry}, timeout=self.seconds, return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        hurry.cancel()
        if self.in_flight:
            log.warning("drain time is up with %d requests and streams still in flight", self.in_flight)
        self.expired.set()

    def hurry(self) -> None:
        """End the drain now (a second signal)."""
        self._hurry.set()


class DrainGate:
    """ASGI middleware: counts every request and stream as work, and turns new HTTP work away while draining."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PROBES:  # they answer while draining
            await self.app(scope, receive, send)
            return
        drain: Drain = scope["app"].state.drain
        if scope["type"] == "http" and drain.draining:
            response = error_response(503, "shutting_down", "this server is shutting down; send the request again")
            response.headers.update({"Connection": "close", "Retry-After": "1"})
            await response(scope, receive, send)
            return
        with drain.work():
            await self.app(scope, receive, send)


class Server(uvicorn.Server):
    """uvicorn that drains ``app`` before it shuts down, and exits 0 after a SIGTERM or SIGINT."""

    def __init__(self, config: uvicorn.Config, app: Starlette):
        super().__init__(config)
        self.app = app
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task | None = None
        self._signals = 0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Runs as the signal handler; the drain itself starts on the event loop."""
        self._signals += 1
        if self._loop is None or self._signals > 2:  # not serving yet, or a third signal: stop now
            self.should_exit = True
            return
        self._loop.call_soon_threadsafe(self._start_drain if self._signals == 1 else self.app.state.drain.hurry)

    def _start_drain(self) -> None:
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        await self.app.state.drain.run()
        if self.app.state.recogniser is not None:  # what is still queued fails fast, with 503 shutting_down
            await asyncio.to_thread(self.app.state.recogniser.close)
        self.should_exit = True

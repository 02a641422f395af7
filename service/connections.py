"""Connections, below the application: how many may be open, and how long and large a request's head may be.

uvicorn's own HTTP protocol (httptools) leaves a connection open for as long as it sends nothing or
trickles its headers, keeps headers of any size (one of 200 MB stalled every other client for 15 s),
and accepts connections until the process runs out of file descriptors. :func:`protocol` returns
that protocol with, from ``Settings``:

- at most ``ASR_MAX_CONNECTIONS`` open (HTTP and WebSocket): beyond, a 503 and the connection closes,
  so its descriptor is free at once and ``/health`` still answers;
- ``ASR_HEADER_TIMEOUT_SECONDS`` for a request's line and headers, from the moment the connection
  opens or the request's first byte arrives: 408, closed;
- ``ASR_MAX_HEADER_BYTES`` for them: 431, closed;
- and the answers uvicorn writes in plain text, for requests it cannot parse and WebSocket handshakes
  it refuses (:class:`WebSocket`), in the service's JSON.

The body's size and pace are the application's (``service.body``); idle keep-alive connections
close after ``ASR_KEEP_ALIVE_SECONDS`` (uvicorn's ``timeout_keep_alive``). ``python -m service`` runs
uvicorn with these; ``uvicorn service.app:app`` would run without them.
"""

from __future__ import annotations

import asyncio
import http
import json
import logging
import resource

from starlette import status
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request

from service.errors import error_body
from service.settings import Settings

log = logging.getLogger(__name__)

_RESERVED_DESCRIPTORS = 128
"""Kept free of connections for the model, the logs, the LM and the threads' own files."""


class _HeadTooLarge(Exception):
    pass


def refusal(status: int, code: str, message: str) -> bytes:
    """A whole HTTP/1.1 response in the service's error shape, after which the connection closes."""
    body = json.dumps(error_body(status, code, message)).encode()
    head = (
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


def connection_limit(wanted: int) -> int:
    """``wanted``, or fewer where the process may not open that many files: the soft limit is raised to the
    hard one as far as needed, and connections stay ``_RESERVED_DESCRIPTORS`` below it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = wanted + _RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    if soft != resource.RLIM_INFINITY and soft < needed:
        allowed = max(1, soft - _RESERVED_DESCRIPTORS)
        log.warning("only %d open files allowed (ulimit -n): at most %d connections, not %d", soft, allowed, wanted)
        return allowed
    return wanted


def protocol(settings: Settings) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the limits of ``settings`` (see the module's docstring)."""
    max_connections = connection_limit(settings.max_connections)

    class Guarded(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_bytes = 0
        """Bytes received while the head is incomplete: bounds what the parser buffers before it calls back."""
        _parsed_head = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                limit = f"at its limit of {max_connections} connections (ASR_MAX_CONNECTIONS)"
                self._refuse(503, "too_many_connections", f"the server is {limit}; try again shortly")
                return
            self._await_head()

        def _await_head(self) -> None:
            if self._head_timer is None:
                self._head_bytes = 0
                self._head_timer = self.loop.call_later(settings.header_timeout_seconds, self._head_too_slow)

        def _head_too_slow(self) -> None:
            seconds = settings.header_timeout_seconds
            self._refuse(408, "request_timeout", f"no complete request head within {seconds:g} s")

        def _head_done(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def data_received(self, data: bytes) -> None:
            in_head = self._head_timer is not None
            super().data_received(data)
            if in_head and self._head_timer is not None:  # the head goes on: all of this was head
                self._head_bytes += len(data)
                if self._head_bytes > settings.max_header_bytes:
                    self._head_too_large()

        def _head_too_large(self) -> None:
            limit = f"{settings.max_header_bytes} bytes (ASR_MAX_HEADER_BYTES)"
            self._refuse(431, "headers_too_large", f"the request line and headers exceed {limit}")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._await_head()
            self._parsed_head = 0

        def on_url(self, url: bytes) -> None:
            self._count_head(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_head(len(name) + len(value) + 4)
            super().on_header(name, value)

        def _count_head(self, size: int) -> None:
            """The parser's count, exact where a whole head arrives at once."""
            self._parsed_head += size
            if self._parsed_head > settings.max_header_bytes:
                raise _HeadTooLarge  # httptools stops and reports a parse error: send_400_response

        def on_headers_complete(self) -> None:
            self._head_done()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_done()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            if self._parsed_head > settings.max_header_bytes:
                self._head_too_large()
            else:
                self._refuse(400, "invalid_http", msg)

        def _refuse(self, status: int, code: str, message: str) -> None:
            self._head_done()
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:  # mid-answer: no room for another
                self.transport.close()
                return
            log.debug("%s: %d %s", self.client[0] if self.client else "a client", status, message)
            self.transport.write(refusal(status, code, message))
            self.transport.close()

    return Guarded


class WebSocket(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, refusing a bad handshake (no ``Sec-WebSocket-Key``, say) in JSON, and
    naming the limit before it closes a stream whose message is too big."""

    def handle_parser_exception(self) -> None:
        """A message past ``ASR_STREAM_MAX_MESSAGE_BYTES`` is refused by the protocol before the app sees it,
        with close code 1009; like every other stream error, an ``{"error"}`` message goes first."""
        if self.conn.close_sent is not None and self.conn.close_sent.code == status.WS_1009_MESSAGE_TOO_BIG:
            limit = self.config.ws_max_size
            error = {"error": f"a message may hold at most {limit} bytes (ASR_STREAM_MAX_MESSAGE_BYTES)"}
            self.transport.write(Frame(Opcode.TEXT, json.dumps(error).encode()).serialize(mask=False))
        super().handle_parser_exception()

    def handle_connect(self, event: Request) -> None:
        response = self.conn.accept(event)
        if response.status_code == 101:
            super().handle_connect(event)
            return
        message = response.body.decode(errors="replace").strip() or response.reason_phrase
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.transport.write(refusal(response.status_code, "invalid_websocket_handshake", message))
        self.transport.close()

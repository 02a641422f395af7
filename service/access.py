"""The access middleware: each request's and stream's id, its access line, and its count and latency.

A request's id comes from its ``X-Request-ID`` header when that is a sane token, else it is made
here; it is returned in the response's ``X-Request-ID`` and set for the logs (:mod:`service.logs`).
The access line is ours, not uvicorn's, so query strings never reach the log. HTTP requests are
counted by route template (``/v1/transcribe``, not its query), and while they are answered.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import request_id
from service.metrics import Metrics

log = logging.getLogger(__name__)

_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
PROBES = frozenset({"/health", "/ready", "/metrics"})
"""Polled every few seconds by orchestrators and Prometheus: their access lines are debug, not info."""


class Access:
    """ASGI middleware: one wrapper of ``send`` that sees each answer's status, for the log and the metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get("x-request-id", "")
        rid = given if _SANE_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        started, status = time.perf_counter(), None

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("X-Request-ID", rid)
            elif message["type"] == "websocket.accept":
                status = 101
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            elif message["type"] == "websocket.close" and status is None:
                status = 403
            await send(message)

        counted = scope["type"] == "http" and scope["path"] not in PROBES
        if counted:
            self.metrics.requests_in_flight.inc()
        try:
            await self.app(scope, receive, sending)
        finally:
            if counted:
                self.metrics.requests_in_flight.dec()
            seconds = time.perf_counter() - started
            if scope["type"] == "http":
                route = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.requests.labels(route, str(status or 500)).inc()
                self.metrics.latency.labels(route).observe(seconds)
            self._log(scope, status, round(1000 * seconds, 1))
            request_id.reset(token)

    @staticmethod
    def _log(scope: Scope, status: int | None, ms: float) -> None:
        method = scope.get("method", "WEBSOCKET")
        client = scope["client"][0] if scope.get("client") else None
        log.log(
            logging.DEBUG if scope["path"] in PROBES else logging.INFO,
            "%s %s %s %.1f ms",
            method,
            scope["path"],
            status,
            ms,
            extra={"fields": {"method": method, "path": scope["path"], "status": status, "ms": ms, "client": client}},
        )

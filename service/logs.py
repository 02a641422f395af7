"""Logs: one JSON object per line, each carrying the id of the request it belongs to, and no secrets.

A request's id comes from its ``X-Request-ID`` header when that is a sane token, else it is made
here. It is returned in the response's ``X-Request-ID`` and set in a context variable, which every
log line written on the request's behalf picks up (tasks it starts included); the inference
worker's lines about a batch carry the ids of all its requests, space-separated. The access line is
ours, not uvicorn's, so query strings never reach the log; API keys, as bearer tokens or
``api_key=`` parameters, are blanked out of every line.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
log = logging.getLogger("service.access")

_SECRETS = re.compile(r"(?i)(bearer\s+|api_key=)[^\s&\"']+")
_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
PROBES = frozenset({"/health", "/ready", "/metrics"})
"""Polled every few seconds by orchestrators and Prometheus: their access lines are debug, not info."""


def redact(text: str) -> str:
    return _SECRETS.sub(r"\1[redacted]", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": request_id.get(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` on one line: control characters as ``\\xNN``, so that a ``%0a`` in a path cannot forge a line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1] if ord(m.group()) < 128 else ascii(m.group())[1:-1], text)


class TextFormatter(logging.Formatter):
    """Lines for people: the message on one line (escaped), then any traceback."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        rid = request_id.get()
        line = printable(redact(super().formatMessage(record)))
        return f"{line} [{rid}]" if rid else line

    def formatException(self, ei) -> str:  # noqa: N802
        return redact(super().formatException(ei))


def config(level: str, fmt: str) -> dict:
    """A logging.config.dictConfig for uvicorn and the service: everything through one formatter."""
    formatter = {"()": JsonFormatter} if fmt == "json" else {"()": TextFormatter, "fmt": "%(levelname)s: %(message)s"}
    handler = {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {name: {"handlers": [], "propagate": True} for name in ("uvicorn", "uvicorn.error")},
    }


class RequestLog:
    """ASGI middleware: gives each request and stream its id, returns it, and writes its access line."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
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

        try:
            await self.app(scope, receive, sending)
        finally:
            method = scope.get("method", "WEBSOCKET")
            ms = round(1000 * (time.perf_counter() - started), 1)
            client = scope["client"][0] if scope.get("client") else None
            log.log(
                logging.DEBUG if scope["path"] in PROBES else logging.INFO,
                "%s %s %s %.1f ms",
                method,
                scope["path"],
                status,
                ms,
                extra={
                    "fields": {"method": method, "path": scope["path"], "status": status, "ms": ms, "client": client}
                },
            )
            request_id.reset(token)

"""Logs: one JSON object per line, each carrying the id of the request it belongs to, and no secrets.

A request's id (:mod:`service.access` sets it) is held in a context variable, which every log line
written on the request's behalf picks up (tasks it starts included); the inference worker's lines
about a batch carry the ids of all its requests, space-separated. API keys, as bearer tokens or
``api_key=`` parameters, are blanked out of every line.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from contextvars import ContextVar
from typing import Any

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

_SECRETS = re.compile(r"(?i)(bearer\s+|api_key=)[^\s&\"']+")


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

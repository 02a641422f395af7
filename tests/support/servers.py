"""Servers to test against: the real process (``python -m service``), or the same app and uvicorn setup on a
thread of the test process, with any recogniser; and the clients' side of them."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import ClientConnection

from service.__main__ import uvicorn_config
from service.app import create_app
from service.logs import JsonFormatter
from service.recogniser import Recogniser
from service.settings import Settings


@contextmanager
def serve(
    log: Path | None = None, module: str = "service", **settings: object
) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python -m service`` (or another ``module``) on a free loopback port with ``ASR_*`` settings, until it is
    ready.

    Yields its URL and process; its output goes to ``log`` (else to this process's). A server
    still running when the block ends is stopped with SIGTERM.
    """
    port = free_port()
    env = {**os.environ, "ASR_HOST": "127.0.0.1", "ASR_PORT": str(port)}
    env.update({f"ASR_{k.upper()}": str(v) for k, v in settings.items()})
    output = log.open("wb") if log else None
    process = subprocess.Popen(
        [sys.executable, "-m", module], env=env, stdout=output, stderr=subprocess.STDOUT if log else None
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                said = f":\n{log.read_text()}" if log else ""
                raise RuntimeError(f"the service did not become ready within 60 s{said}")
            time.sleep(0.1)
        yield url, process
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)
        if output:
            output.close()


@contextmanager
def serve_app(recogniser: Recogniser, log: Path | None = None, **settings: object) -> Iterator[str]:
    """The service's app and uvicorn, configured as ``python -m service`` configures them, on a thread here,
    serving ``recogniser``; yields its URL. The service's and uvicorn's log lines go to ``log``, as JSON."""
    chosen = Settings(host="127.0.0.1", port=free_port(), **settings)
    server = uvicorn.Server(uvicorn_config(create_app(chosen, recogniser), chosen))
    handler = logging.FileHandler(log) if log else logging.NullHandler()
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger(name) for name in ("service", "uvicorn.error")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(chosen.log_level.upper())
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10)
        yield f"http://127.0.0.1:{chosen.port}"
    finally:
        server.should_exit = True
        thread.join(10)
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
        handler.close()


def free_port() -> int:
    """A TCP port free on loopback now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def address(url: str) -> tuple[str, int]:
    """The host and port of an ``http://host:port`` URL, for a raw socket."""
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reply's head and body may come apart)."""
    return b"".join(iter(lambda: sock.recv(65536), b""))


def wait_until(condition: Callable[[], object], timeout: float = 30) -> None:
    """Poll ``condition`` until it holds: for what the server does on its own time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def samples(metrics_text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus ``/metrics`` text, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
    }


def gauge(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one series of a ``/metrics`` text."""
    return samples(metrics_text)[(name, tuple(sorted(labels.items())))]


def metric(url: str, name: str, **labels: str) -> float:
    """One series of the server's ``/metrics`` now (0 where it has not been counted yet)."""
    return samples(httpx.get(f"{url}/metrics").text).get((name, tuple(sorted(labels.items()))), 0.0)


def resident_mb(pid: int, field: str = "VmRSS") -> float:
    """The process's resident memory now (``VmRSS``) or at its peak so far (``VmHWM``), in MB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith(field))
    return int(line.split()[1]) / 1024


def arriving_over(data: bytes, seconds: float, pieces: int = 10) -> Iterator[bytes]:
    """``data`` as a request body that takes ``seconds`` to arrive, in even pieces: in flight for that long on
    any machine."""
    size = -(-len(data) // pieces)
    for start in range(0, len(data), size):
        yield data[start : start + size]
        time.sleep(seconds / pieces)


def post_in_background(url: str, audio: bytes | Iterator[bytes]) -> tuple[threading.Thread, dict]:
    """POST ``audio`` to ``/v1/transcribe`` on a thread; the dict gets its ``response`` (or ``error``)."""
    outcome: dict = {}

    def post() -> None:
        try:
            outcome["response"] = httpx.post(f"{url}/v1/transcribe", content=audio, timeout=120)
        except httpx.TransportError as error:
            outcome["error"] = error

    thread = threading.Thread(target=post)
    thread.start()
    return thread, outcome


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/v1/stream"


def session(ws: ClientConnection, audio: bytes, chunk_bytes: int) -> list[dict]:
    """Send every chunk and read its one reply, as Vosk clients do."""
    replies = []
    for i in range(0, len(audio), chunk_bytes):
        ws.send(audio[i : i + chunk_bytes])
        replies.append(json.loads(ws.recv(timeout=30)))
    return replies


@contextmanager
def in_process(recogniser: Recogniser, **settings: object) -> Iterator[TestClient]:
    """The app serving ``recogniser``, called in this process (no sockets): for what the app itself decides."""
    with TestClient(create_app(Settings(**settings), recogniser), raise_server_exceptions=False) as client:
        yield client

"""deploy/nginx.conf in front of two real replicas: uploads, streams, and a replica draining under load.

The config runs as written except where Docker's world differs from loopback: its upstream names
the two replicas' ports instead of the Compose service, it listens on a free port, and it keeps its
pid and temporary files in the test's folder, with workers of the test's own user.
"""

from __future__ import annotations

import getpass
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.servers import arriving_over, free_port, metric, post_in_background, serve, session, wait_until
from tests.support.speech import pcm, speak
from training.metrics import cer

ROOT = Path(__file__).parents[1]
TEXT = "open the garage door please"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[tuple[str, list[tuple[str, subprocess.Popen]], Path]]:
    """Two replicas behind nginx with the project's config: the proxy's URL, the replicas, their logs' folder."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    folder = tmp_path_factory.mktemp("nginx")
    with ExitStack() as stack:
        replicas = [stack.enter_context(serve(log=folder / f"replica{i}.log")) for i in range(2)]
        port = free_port()
        config = (ROOT / "deploy/nginx.conf").read_text()
        upstream = " ".join(f"server {url.removeprefix('http://')};" for url, _ in replicas)
        temp = " ".join(f"{kind}_temp_path {folder}/{kind};" for kind in ("client_body", "proxy"))
        for old, new in {
            "server asr:8000 resolve;": upstream,
            "listen 8080;": f"listen 127.0.0.1:{port}; {temp}",
            "pid /tmp/nginx.pid;": f"pid {folder}/nginx.pid; user {getpass.getuser()};",  # workers can read here
        }.items():
            assert old in config
            config = config.replace(old, new)
        (folder / "nginx.conf").write_text(config)
        proxy = subprocess.Popen(
            [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", "stderr", "-g", "daemon off;"],
            stdout=(folder / "nginx.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                httpx.get(f"{url}/health")
                break
            except httpx.TransportError:
                assert proxy.poll() is None, (folder / "nginx.log").read_text()
                assert time.monotonic() < deadline
                time.sleep(0.1)
        try:
            yield url, replicas, folder
        finally:
            proxy.terminate()
            proxy.wait(10)


def test_uploads_pass_through_and_metrics_stay_private(cluster):
    url, _, _ = cluster
    response = httpx.post(f"{url}/v1/transcribe", files={"file": ("a.wav", speak(TEXT), "audio/wav")}, timeout=30)
    assert response.status_code == 200 and cer([TEXT], [response.json()["text"]]) <= 0.3
    assert httpx.get(f"{url}/metrics").status_code == 404


def test_keys_and_forged_lines_reach_no_log_of_the_proxy_or_the_replicas(cluster):
    """The page's stream sends its key as ?api_key=, which nginx's default access line kept."""
    url, _, logs = cluster
    ws_url = url.replace("http://", "ws://") + "/v1/stream?api_key=sekrit-in-query"
    with connect(ws_url, additional_headers={"Referer": f"{url}/?api_key=sekrit-in-referer"}) as ws:
        ws.send('{"eof" : 1}')
        ws.recv(timeout=30)
    httpx.get(f"{url}/v1/models?api_key=sekrit-in-query", headers={"Authorization": "Bearer sekrit-bearer"})
    httpx.get(f"{url}/forged%0aGET%20/admin%20HTTP/1.1")

    def text() -> str:
        return "".join(path.read_text() for path in logs.glob("*.log"))

    wait_until(lambda: "forged" in text())  # nginx writes its access line after the response
    text = text()
    assert "/v1/models" in text and "sekrit" not in text
    assert not any(line.startswith("GET /admin") for line in text.splitlines())


def test_each_stream_stays_on_one_replica_and_new_streams_go_to_the_least_busy(cluster):
    url, replicas, logs = cluster
    audio, _ = pcm(16000)
    ws_url = url.replace("http://", "ws://") + "/v1/stream"
    with connect(ws_url) as first, connect(ws_url) as second:
        first.send(audio[:6400])
        second.send(audio[:6400])
        first.recv(timeout=30), second.recv(timeout=30)
        assert [metric(replica, "asr_streams_in_flight") for replica, _ in replicas] == [1, 1]
        texts = []
        for ws in (first, second):
            session(ws, audio[6400:], 6400)
            ws.send('{"eof" : 1}')
            texts.append(json.loads(ws.recv(timeout=30)))
    assert all("text" in t for t in texts)


def test_a_draining_replica_ends_its_streams_with_1001_and_nginx_moves_its_new_uploads_to_the_other(cluster):
    url, replicas, logs = cluster
    (draining, process), (other, _) = replicas
    audio, _ = pcm(16000)
    ws_url = url.replace("http://", "ws://") + "/v1/stream"
    with connect(ws_url) as first, connect(ws_url) as second:
        for ws in (first, second):
            ws.send(audio[:6400])
            ws.recv(timeout=30)
        on_draining = metric(draining, "asr_streams_in_flight")
        # An upload sent straight to the replica, arriving over 3 s on any machine, keeps it draining while the
        # proxy's uploads arrive.
        thread, outcome = post_in_background(draining, arriving_over(speak(TEXT), seconds=3))
        wait_until(lambda: metric(draining, "asr_requests_in_flight") == 1)
        process.send_signal(signal.SIGTERM)
        wait_until(lambda: httpx.get(f"{draining}/ready").status_code == 503)
        uploads = [
            httpx.post(f"{url}/v1/transcribe", files={"file": ("a.wav", speak(TEXT), "audio/wav")}, timeout=30)
            for _ in range(4)
        ]
        codes = []
        for ws in (first, second):
            try:
                session(ws, audio[6400:], 6400)
                ws.send('{"eof" : 1}')
                ws.recv(timeout=30)
                ws.recv(timeout=30)
            except ConnectionClosed as closed:
                codes.append(closed.rcvd.code if closed.rcvd else None)
        thread.join(60)
    assert [r.status_code for r in uploads] == [200] * 4
    assert "POST /v1/transcribe 503" in (logs / "replica0.log").read_text()  # refused, then retried
    assert sorted(codes) == sorted([1001] * int(on_draining) + [1000] * (2 - int(on_draining)))
    assert outcome["response"].status_code == 200  # what was in flight on the draining replica finished
    assert process.wait(timeout=30) == 0
    assert metric(other, "asr_streams_in_flight") == 0

"""Graceful shutdown of a real server process on a real SIGTERM."""

from __future__ import annotations

import json
import signal
import socket

import httpx
import pytest
import torch
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from asr.audio import decode
from asr.features import prepare_waveform
from tests.support.servers import address, metric, post_in_background, serve, until_closed, wait_until
from tests.support.speech import long_wav, speak, without_tail
from training.metrics import cer

SENTENCE = "turn off the kitchen lights"


def test_sigterm_refuses_new_work_finishes_what_is_in_flight_and_exits_0(tmp_path):
    file_audio, file_text = long_wav(90)
    speech = (without_tail(prepare_waveform(*decode(speak(SENTENCE)))) * 32767).to(torch.int16).numpy().tobytes()
    with serve(log=tmp_path / "log", drain_seconds=60, stream_sample_rate=16000) as (url, process):
        ws_url = url.replace("http://", "ws://") + "/v1/stream"
        with connect(ws_url) as stream:
            for i in range(0, len(speech), 6400):  # an utterance left open: speech, no pause after it
                stream.send(speech[i : i + 6400])
                assert "partial" in json.loads(stream.recv(timeout=30))
            thread, outcome = post_in_background(url, file_audio)
            wait_until(lambda: metric(url, "asr_audio_in_flight_seconds") > 0)
            process.send_signal(signal.SIGTERM)

            wait_until(lambda: httpx.get(f"{url}/ready").status_code == 503)
            assert httpx.get(f"{url}/ready").json() == {"status": "draining"}
            assert httpx.get(f"{url}/health").status_code == 200
            refused = httpx.post(f"{url}/v1/transcribe", content=speak("hello"))
            assert refused.status_code == 503 and refused.headers["connection"] == "close"
            assert refused.json()["error"]["code"] == "shutting_down"
            with connect(ws_url) as late:
                assert "shutting down" in json.loads(late.recv(timeout=10))["error"]
                with pytest.raises(ConnectionClosed) as closed:
                    late.recv(timeout=10)
                assert closed.value.rcvd.code == 1001

            final = json.loads(stream.recv(timeout=30))  # the open utterance's result, then 1001
            assert cer([SENTENCE], [final["text"]]) <= 0.3
            with pytest.raises(ConnectionClosed) as closed:
                stream.recv(timeout=30)
            assert closed.value.rcvd.code == 1001

        thread.join(120)
        assert outcome["response"].status_code == 200
        assert cer([file_text], [outcome["response"].json()["text"]]) <= 0.35
        assert process.wait(timeout=30) == 0
    assert "draining: 2 requests and streams in flight" in (tmp_path / "log").read_text()


def stalled_upload(url: str) -> socket.socket:
    """A connection that has sent a request's head and 10 of its 100,000 bytes, and then nothing."""
    stalled = socket.create_connection(address(url))
    stalled.sendall(b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"\0" * 10)
    stalled.settimeout(20)
    return stalled


def json_error(stalled: socket.socket) -> tuple[bytes, dict]:
    """The status line and error of the reply that ends the connection."""
    head, _, body = until_closed(stalled).partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0], json.loads(body)["error"]


def answered_503_when_the_drain_ends(tmp_path, drain_seconds: float, signals: int) -> str:
    """A file being transcribed and an upload stalled midway, then ``signals`` SIGTERMs (the second once the drain
    has begun): both must get a JSON 503 ``shutting_down`` and the exit must be 0. The server's log.

    The server is the real process serving a recogniser whose reads never finish, so the file is still in flight
    when the drain ends, on any machine."""
    fake = "tests.support.fake_service"
    with serve(log=tmp_path / "log", module=fake, drain_seconds=drain_seconds) as (url, process):
        thread, outcome = post_in_background(url, speak(SENTENCE))
        with stalled_upload(url) as stalled:
            wait_until(lambda: metric(url, "asr_queue_depth") > 0)
            process.send_signal(signal.SIGTERM)
            if signals == 2:
                wait_until(lambda: httpx.get(f"{url}/ready").status_code == 503)
                process.send_signal(signal.SIGTERM)
            status, error = json_error(stalled)
        assert process.wait(timeout=30) == 0
        thread.join(30)
    assert status == b"HTTP/1.1 503 Service Unavailable" and error["code"] == "shutting_down"
    refused = outcome["response"]
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
    return (tmp_path / "log").read_text()


def test_work_still_running_when_the_drain_time_is_up_fails_with_a_503_and_the_exit_is_still_0(tmp_path):
    """The file cannot finish within the drain time; the stalled upload got a 500 and a CancelledError."""
    log = answered_503_when_the_drain_ends(tmp_path, drain_seconds=0.5, signals=1)
    assert "drain time is up with 2 requests and streams still in flight" in log


def test_a_second_sigterm_ends_the_drain_with_json_503s_for_work_and_uploads_in_flight(tmp_path):
    """A second signal answered what was in flight with uvicorn's plain-text 500."""
    log = answered_503_when_the_drain_ends(tmp_path, drain_seconds=60, signals=2)
    assert "Traceback" not in log and "CancelledError" not in log

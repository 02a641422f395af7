"""The real service: ``python -m service`` on a loopback port, driven over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from asr.audio import decode
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.transcriber import Transcriber
from tests.conftest import speak
from training.metrics import cer

SENTENCE = "turn off the kitchen lights"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    port = _free_port()
    env = {**os.environ, "ASR_HOST": "127.0.0.1", "ASR_PORT": str(port), "ASR_DEVICE": "cpu"}
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "service"], env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            if process.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError(f"the service did not come up within 60 s:\n{log.read_text()}")
    assert "loaded" in log.read_text() and "parameters) on cpu" in log.read_text()
    yield url
    process.terminate()
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it, so the exit status is the signal's.
    assert process.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text(), log.read_text()


def test_health(server):
    response = httpx.get(f"{server}/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_transcribes_a_spoken_wav_with_the_bundled_model(server):
    wav = speak(SENTENCE, voice="en-gb-x-rp", rate=160)
    response = httpx.post(f"{server}/v1/transcribe", files={"file": ("speech.wav", wav, "audio/wav")}, timeout=60)
    assert response.status_code == 200, response.text
    body = response.json()
    waveform, rate = decode(wav)
    assert body["duration"] == pytest.approx(waveform.shape[-1] / rate, abs=1e-3)
    assert body["model"] == "default"
    # The server answers exactly what the bundled model says in-process...
    [expected] = Transcriber.from_checkpoint(DEFAULT_CHECKPOINT, "cpu").transcribe([(waveform, rate)])
    assert body["text"] == expected.text
    # ...and that is close to what was said (the bundled model's dev CER is 19%: MODEL_CARD.md).
    assert cer([SENTENCE], [body["text"]]) <= 0.35, body["text"]
    words = body["words"]
    assert " ".join(w["word"] for w in words) == body["text"]
    assert all(0 <= w["start"] < w["end"] <= body["duration"] and 0 < w["confidence"] <= 1 for w in words)
    assert [w["start"] for w in words] == sorted(w["start"] for w in words)


def test_non_audio_upload_is_a_clear_400(server):
    response = httpx.post(
        f"{server}/v1/transcribe", files={"file": ("notes.wav", b"these are not audio bytes", "audio/wav")}
    )
    assert response.status_code == 400
    message = "notes.wav: not a supported audio file (Format not recognised)"
    assert response.json()["error"] == {"code": "invalid_audio", "message": message}


def test_empty_upload_is_a_clear_400(server):
    response = httpx.post(f"{server}/v1/transcribe", files={"file": ("empty.wav", b"", "audio/wav")})
    assert response.status_code == 400 and "empty" in response.json()["error"]["message"]


def test_missing_file_field_is_a_422_naming_it(server):
    response = httpx.post(f"{server}/v1/transcribe", data={"audio": "x"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request" and "file" in response.json()["error"]["message"]


def test_unknown_route_is_a_json_404(server):
    response = httpx.get(f"{server}/v1/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "http_error"


def test_a_failure_inside_recognition_is_a_json_500_naming_it(monkeypatch):
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    with TestClient(create_app(Settings(device="cpu")), raise_server_exceptions=False) as client:

        def broken(audio):
            raise RuntimeError("injected failure")

        monkeypatch.setattr(client.app.state.transcriber, "transcribe", broken)
        response = client.post("/v1/transcribe", files={"file": ("a.wav", speak("open the door"), "audio/wav")})
        assert response.status_code == 500
        assert response.json()["error"] == {"code": "internal_error", "message": "RuntimeError: injected failure"}
        assert client.get("/health").status_code == 200

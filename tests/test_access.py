"""API keys, CORS and structured logs, against the service with keys configured (its recogniser needs no model)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from pydantic import SecretStr
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from service.logs import TextFormatter, redact
from service.settings import Settings
from tests.support.fake import FakeRecogniser
from tests.support.servers import serve_app, session, wait_until
from tests.support.speech import pcm, speak

KEYS = ("alpha-key-1", "beta-key-2")
ORIGIN = "https://app.example"
TEXT = "open the garage door please"


@pytest.fixture(scope="module")
def locked(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    folder = tmp_path_factory.mktemp("locked")
    (folder / "keys").write_text(f"# one key per line\n{KEYS[1]}\n")
    with serve_app(
        FakeRecogniser(text=TEXT),
        log=folder / "log",
        api_keys=KEYS[0],
        api_keys_file=folder / "keys",
        cors_origins=ORIGIN,
        log_level="debug",
    ) as url:
        yield url, folder / "log"


def log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_probes_metrics_and_docs_stay_open(locked):
    url, _ = locked
    for path in ("/health", "/ready", "/metrics", "/docs", "/openapi.json"):
        assert httpx.get(f"{url}{path}").status_code == 200, path


@pytest.mark.parametrize("key", KEYS)
def test_each_configured_key_opens_the_api(locked, key):
    url, _ = locked
    response = httpx.post(f"{url}/v1/transcribe", files={"file": ("a.wav", speak(TEXT))}, headers=bearer(key))
    assert response.status_code == 200 and response.json()["text"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong"),
        bearer(KEYS[0] + "x"),
        bearer(KEYS[0][:-1]),
        {"Authorization": KEYS[0]},
        {"Authorization": "Basic " + KEYS[0]},
    ],
    ids=["missing", "wrong", "longer", "shorter", "no scheme", "basic"],
)
def test_a_missing_or_wrong_key_is_one_401_that_tells_nothing_more(locked, headers):
    url, _ = locked
    response = httpx.post(f"{url}/v1/transcribe", files={"file": ("a.wav", b"x")}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "error": {
            "code": "invalid_api_key",
            "message": "a valid API key is required: send 'Authorization: Bearer KEY' (or ?api_key=KEY on the "
            "WebSocket)",
            "type": "invalid_request_error",
            "param": None,
        }
    }


def test_the_openai_client_authenticates_with_its_api_key(locked):
    url, _ = locked
    good = openai.OpenAI(base_url=f"{url}/v1", api_key=KEYS[1], max_retries=0)
    assert good.audio.transcriptions.create(model="whisper-1", file=("a.wav", speak(TEXT))).text
    bad = openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


@pytest.mark.parametrize("how", ["header", "query"])
def test_a_stream_authenticates_by_header_or_by_query_parameter(locked, how):
    url, _ = locked
    ws_url = url.replace("http://", "ws://") + "/v1/stream"
    audio, _ = pcm(16000, sentences=["what time is it"])
    kwargs = {"additional_headers": bearer(KEYS[0])} if how == "header" else {}
    with connect(ws_url + (f"?api_key={KEYS[0]}" if how == "query" else ""), **kwargs) as ws:
        replies = session(ws, audio, 6400)
    assert any("result" in reply for reply in replies)


@pytest.mark.parametrize("path", ["/v1/stream", "", "/"])
def test_a_stream_without_a_key_gets_an_error_and_1008(locked, path):
    """Vosk's clients connect to ``ws://host:port``: the root path needs the key as /v1/stream does."""
    url, _ = locked
    with connect(url.replace("http://", "ws://") + f"{path}?api_key=wrong") as ws:
        assert json.loads(ws.recv(timeout=10))["error"].startswith("a valid API key is required")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1008


def test_vosk_clients_stream_at_the_root_and_a_browser_still_gets_the_page_there(locked):
    url, _ = locked
    audio, _ = pcm(16000, sentences=["what time is it"])
    with connect(url.replace("http://", "ws://"), additional_headers=bearer(KEYS[1])) as ws:  # as Vosk's clients
        ws.send('{"config": {"sample_rate": 16000}}')
        replies = session(ws, audio, 6400)
    assert any(reply.get("text") == TEXT for reply in replies)
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_cors_admits_the_configured_origin_only(locked):
    url, _ = locked
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    allowed = httpx.options(f"{url}/v1/transcribe", headers={"Origin": ORIGIN, **preflight})
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    other = httpx.options(f"{url}/v1/transcribe", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in other.headers
    simple = httpx.get(f"{url}/health", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN


def test_cors_is_closed_by_default(server):
    url, _ = server
    response = httpx.options(
        f"{url}/v1/transcribe", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in response.headers
    assert Settings().cors_origin_list == []


def test_every_log_line_is_json_with_the_request_id_that_the_response_carries(locked):
    url, log = locked
    response = httpx.post(
        f"{url}/v1/transcribe", content=speak(TEXT), headers={**bearer(KEYS[0]), "X-Request-ID": "trace-42"}
    )
    assert response.headers["x-request-id"] == "trace-42"
    minted = httpx.get(f"{url}/health").headers["x-request-id"]
    assert len(minted) == 32
    unsafe = httpx.get(f"{url}/health", headers={"X-Request-ID": "bad id\twith spaces"}).headers["x-request-id"]
    assert unsafe != "bad id\twith spaces"
    lines = log_lines(log)  # every line parses as JSON
    [access] = [line for line in lines if line["request_id"] == "trace-42" and line["logger"] == "service.access"]
    assert access | {"ms": 0} == {
        **access,
        "method": "POST",
        "path": "/v1/transcribe",
        "status": 200,
        "ms": 0,
    }
    assert any(line["request_id"] == minted for line in lines)


def test_probes_are_logged_only_at_debug_level(server):
    url, log = server  # the suite's server logs at info
    probe = httpx.get(f"{url}/health").headers["x-request-id"]
    api = httpx.get(f"{url}/v1/models").headers["x-request-id"]

    def access_ids() -> set[str]:
        return {line["request_id"] for line in log_lines(log) if line["logger"] == "service.access"}

    wait_until(lambda: api in access_ids())
    assert probe not in access_ids()


def test_keys_never_reach_the_log(locked):
    url, log = locked
    httpx.get(f"{url}/v1/models", headers=bearer(KEYS[0]))
    httpx.get(f"{url}/v1/models?api_key={KEYS[1]}")
    with connect(url.replace("http://", "ws://") + f"/v1/stream?api_key={KEYS[1]}") as ws:
        ws.send('{"eof" : 1}')
        ws.recv(timeout=10)
    text = log.read_text()
    assert "/v1/stream" in text and "/v1/models" in text
    assert not any(key in text for key in KEYS)


def test_keys_come_from_the_variable_and_the_file_and_stay_out_of_the_settings_repr(tmp_path):
    (tmp_path / "keys").write_text("# ops team\nfile-key\n\n")
    settings = Settings(api_keys=SecretStr(" a , b ,"), api_keys_file=tmp_path / "keys")
    assert settings.load_api_keys() == ("a", "b", "file-key")
    assert "file-key" not in repr(settings) and "'a'" not in repr(settings)


def test_redaction_blanks_bearer_tokens_and_api_key_parameters():
    line = 'WebSocket /v1/stream?rate=8000&api_key=s3cr3t "Authorization: Bearer t0ken" [accepted]'
    assert (
        redact(line)
        == 'WebSocket /v1/stream?rate=8000&api_key=[redacted] "Authorization: Bearer [redacted]" [accepted]'
    )


def test_the_text_format_keeps_each_message_on_its_line_so_a_path_cannot_forge_one():
    """Paths arrive percent-decoded: ``/a%0aINFO: ...`` must not start a line of its own."""
    formatter = TextFormatter("%(levelname)s: %(message)s")
    forged = logging.LogRecord("service.access", logging.INFO, "", 0, "GET %s 404", ("/a\nINFO: key=x\r",), None)
    assert formatter.format(forged) == "INFO: GET /a\\nINFO: key=x\\r 404"
    try:
        raise ValueError("boom")
    except ValueError:
        failed = logging.LogRecord("service", logging.ERROR, "", 0, "failed", (), sys.exc_info())
    lines = formatter.format(failed).splitlines()
    assert lines[0] == "ERROR: failed" and lines[-1] == "ValueError: boom"  # tracebacks keep their lines

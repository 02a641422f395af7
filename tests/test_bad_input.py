"""Every bad input and fault the service is tried with, against real servers, and what it does.

``CASES`` is the table in docs/reliability.md: each case's name and outcome are a row there, and
``test_the_docs_table_lists_every_case`` keeps the two the same.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import select
import socket
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from asr.audio import decode
from asr.features import FeatureConfig, prepare_waveform
from tests.support.fake import FakeRecogniser
from tests.support.servers import (
    address,
    metric,
    post_in_background,
    serve,
    serve_app,
    session,
    until_closed,
    wait_until,
)
from tests.support.speech import adts, claiming, encode, long_wav, pcm, speak, wav_bytes
from training.metrics import cer

ROOT = Path(__file__).parents[1]
TEXT = "open the garage door please"
LIMITS = {
    "max_upload_bytes": 3_000_000,
    "max_duration_seconds": 30,
    "stream_idle_seconds": 1.5,
    "max_streams": 3,
    "stream_max_message_bytes": 262144,
    "max_connections": 12,
    "header_timeout_seconds": 1,
    "max_header_bytes": 8192,
    "body_timeout_seconds": 1,
    "min_upload_bytes_per_second": 20000,
    "keep_alive_seconds": 1,
}
"""The limited server's settings: small enough to reach in a test."""


@dataclass(frozen=True)
class Servers:
    limited: str
    log: Path


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[Servers]:
    log = tmp_path_factory.mktemp("limited") / "log"
    with serve(log=log, **LIMITS) as (url, _):
        yield Servers(url, log)


@dataclass(frozen=True)
class Case:
    name: str
    outcome: str
    check: Callable[[Servers], None]


def _speech(rate: int = 22050, channels: int = 1) -> torch.Tensor:
    """TEXT spoken, at ``rate``, as ``(channels, samples)``."""
    waveform, original = decode(speak(TEXT))
    return prepare_waveform(waveform, original, FeatureConfig(sample_rate=rate)).repeat(channels, 1)


def _post(url: str, data: bytes, name: str = "audio.wav", **kw) -> httpx.Response:
    return httpx.post(f"{url}/v1/transcribe", files={"file": (name, data)}, timeout=60, **kw)


def _error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


def _reads(response: httpx.Response, text: str = TEXT, at_most: float = 0.35) -> None:
    assert response.status_code == 200, response.text
    assert cer([text], [response.json()["text"]]) <= at_most, response.json()["text"]


def _at_most_two_letters(response: httpx.Response) -> None:
    assert response.status_code == 200 and len(response.json()["text"]) <= 2, response.text


def _damaged(kind: str, how: str) -> bytes:
    data = encode(_speech(), 22050, kind)
    if how == "truncated":
        return data[: len(data) // 2]
    damaged, rng = bytearray(data), random.Random(0)
    for i in range(len(data) // 3, len(data) // 3 + 200):
        damaged[i] = rng.randrange(256)
    return bytes(damaged)


def _wav_without_samples() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1), out.setsampwidth(2), out.setframerate(16000)
    return buffer.getvalue()


def _raw(s: Servers, *parts: bytes, pause: float = 0.0, timeout: float = 10) -> bytes:
    """Send ``parts`` on a fresh connection, ``pause`` seconds apart, and read until the server closes it."""
    with socket.create_connection(address(s.limited)) as sock:
        sock.settimeout(timeout)
        try:
            for part in parts:
                sock.sendall(part)
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass
        with contextlib.suppress(ConnectionResetError):
            return until_closed(sock)
    return b""


def _json_refusal(reply: bytes, status: int, code: str) -> None:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), reply[:300]
    assert b"content-type: application/json" in head.lower(), head
    assert json.loads(body)["error"]["code"] == code


def _streamed_body_refused_early(s: Servers) -> None:
    """A chunked upload ten times the limit: the 413 arrives while the body is still being sent."""
    limit, sent, chunk = LIMITS["max_upload_bytes"], 0, b"\0" * 65536
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.connect(address(s.limited))
        sock.sendall(
            b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        while sent < 10 * limit and not select.select([sock], [], [], 0)[0]:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(10)
        reply = sock.recv(65536)
        head, _, body = reply.partition(b"\r\n\r\n")
        length = int(re.search(rb"content-length: (\d+)", head.lower())[1])
        while len(body) < length and (more := sock.recv(65536)):  # the body may come in a segment of its own
            body += more
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    assert json.loads(body)["error"]["code"] == "file_too_large"
    assert sent < 3 * limit  # refused as it streamed in (1.1x the limit here), not after reading it all


def _declared_too_large(s: Servers) -> None:
    """A Content-Length past the limit is refused before one byte of the body is sent."""
    reply = _raw(s, b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n").decode()
    assert reply.startswith("HTTP/1.1 413") and "ASR_MAX_UPLOAD_BYTES" in reply


def _ws(s: Servers) -> str:
    return s.limited.replace("http://", "ws://") + "/v1/stream"


def _closes(s: Servers, messages: list, code: int, error: str) -> None:
    """Send ``messages`` (audio is answered one reply each); the stream ends with ``error`` and ``code``."""
    reply: dict = {}
    with connect(_ws(s), max_size=None) as ws:
        for message in messages:
            ws.send(message)
            if isinstance(message, bytes) and len(message) <= LIMITS["stream_max_message_bytes"]:
                reply = json.loads(ws.recv(timeout=30))
        if error:
            reply = reply if "error" in reply else json.loads(ws.recv(timeout=30))
            assert reply["error"].startswith(error)
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == code


def _odd_bytes(s: Servers) -> None:
    audio, _ = pcm(16000, sentences=["what time is it"])
    texts = []
    for chunk in (3001, 3200):
        with connect(_ws(s)) as ws:
            ws.send(json.dumps({"config": {"sample_rate": 16000}}))
            replies = session(ws, audio, chunk)
            assert len(replies) == -(-len(audio) // chunk)
            texts.append(next(r["text"] for r in replies if "result" in r))
    assert texts[0] == texts[1]


def _float_audio(s: Servers) -> None:
    speech = _speech(16000)[0]
    with connect(_ws(s)) as ws:
        ws.send(json.dumps({"config": {"sample_rate": 16000, "encoding": "pcm_f32le"}}))
        replies = session(ws, torch.cat([speech, torch.zeros(16000)]).numpy().tobytes(), 12800)
    assert cer([TEXT], [next(r["text"] for r in replies if "result" in r)]) <= 0.35


def _config_after_audio(s: Servers) -> None:
    first, _ = pcm(16000, pause=0, sentences=["what time is it"])
    second, _ = pcm(8000, sentences=["turn off the lights"])
    with connect(_ws(s)) as ws:
        ws.send(json.dumps({"config": {"sample_rate": 16000}}))
        replies = session(ws, first, 6400)
        ws.send(json.dumps({"config": {"sample_rate": 8000}}))
        replies += session(ws, second, 3200)
        ws.send('{"eof" : 1}')
        replies.append(json.loads(ws.recv(timeout=30)))
    texts = [r["text"] for r in replies if r.get("text")]
    assert len(texts) == 2 and cer(["what time is it", "turn off the lights"], texts) <= 0.35, texts


def _audio_after_eof(s: Servers) -> None:
    audio, _ = pcm(16000, sentences=["what time is it"])
    with connect(_ws(s)) as ws:
        ws.send(audio[:32000])
        ws.recv(timeout=30)
        ws.send('{"eof" : 1}')
        ws.send(audio[32000:64000])
        assert "text" in json.loads(ws.recv(timeout=30))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        assert closed.value.rcvd.code == 1000
    assert httpx.get(f"{s.limited}/ready").status_code == 200


def _disconnect_mid_stream(s: Servers) -> None:
    audio, _ = pcm(16000)
    with connect(_ws(s)) as ws:
        ws.send(audio[:32000])
        ws.recv(timeout=30)
        ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the network just goes
    wait_until(lambda: metric(s.limited, "asr_streams_in_flight") == 0)
    _reads(_post(s.limited, speak(TEXT)))


def _too_many_streams(s: Servers) -> None:
    with contextlib.ExitStack() as stack:
        for _ in range(LIMITS["max_streams"]):
            ws = stack.enter_context(connect(_ws(s)))
            ws.send(b"\0" * 3200)
            ws.recv(timeout=30)
        _closes(s, [], 1013, "the server is at its limit of 3 streams (ASR_MAX_STREAMS)")
    wait_until(lambda: metric(s.limited, "asr_streams_in_flight") == 0)


def _overloaded(_: Servers) -> None:
    fake = FakeRecogniser(text=TEXT, hold=True)  # its reads wait until released, on any machine
    with serve_app(fake, max_queue=1) as url:
        thread, outcome = post_in_background(url, speak(TEXT))
        wait_until(lambda: fake.waiting >= 1)
        refused = _post(url, speak(TEXT))
        fake.release()
        thread.join(60)
    _error(refused, 503, "overloaded")
    assert refused.headers["retry-after"] == "1"
    _reads(outcome["response"], at_most=0)  # the accepted file was not harmed


def _past_deadline(_: Servers) -> None:
    fake = FakeRecogniser(text=TEXT, hold=True)
    with serve_app(fake, request_timeout_seconds=0.5) as url:
        response = httpx.post(f"{url}/v1/transcribe", content=long_wav(90)[0], timeout=60)
        _error(response, 504, "deadline_exceeded")
        wait_until(lambda: fake.waiting == 0)
        assert fake.cancelled == 4 and fake.reads == 0  # the windows in flight, dropped unread
        fake.release()
        _reads(_post(url, speak(TEXT)), at_most=0)


def _client_gone(_: Servers) -> None:
    fake = FakeRecogniser(text=TEXT, hold=True)
    with serve_app(fake) as url:
        with contextlib.suppress(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/transcribe", content=long_wav(90)[0], timeout=httpx.Timeout(60, read=0.5))
        wait_until(lambda: fake.waiting == 0)
    assert fake.cancelled == 4 and fake.reads == 0  # the windows in flight left the queue; none ran


def _eight_channel_header() -> bytes:
    """The 60-byte file that crashed the process: a WAV header of 8 channels and one frame."""
    return wav_bytes(np.zeros((1, 8)), 16000)


def _huge_samples_beside_good_requests(s: Servers) -> None:
    """Samples near 1e30 overflowed the features, and the int8 model then failed the whole batch."""
    huge = wav_bytes((_speech(16000)[0].numpy() * 1e30)[:, None], 16000, float_samples=True)
    results: dict[int, httpx.Response] = {}
    threads = [
        threading.Thread(target=lambda i=i: results.update({i: _post(s.limited, huge if i == 0 else speak(TEXT))}))
        for i in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results[0].status_code == 200, results[0].text
    for i in (1, 2, 3):
        _reads(results[i])


def _hangs_up_mid_upload(s: Servers) -> None:
    with socket.create_connection(address(s.limited)) as sock:
        sock.sendall(
            b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nX-Request-ID: hangs-up\r\nContent-Length: 100000\r\n\r\n"
        )
        sock.sendall(b"\0" * 1000)
    wait_until(lambda: '"request_id": "hangs-up"' in s.log.read_text())
    [line] = [json.loads(line) for line in s.log.read_text().splitlines() if '"request_id": "hangs-up"' in line]
    assert line["status"] == 499 and line["path"] == "/v1/transcribe"
    assert metric(s.limited, "asr_requests_total", route="/v1/transcribe", status="499") >= 1


def _digits_content_length(s: Servers) -> None:
    """Zeros first, the parser reads 5,001 digits as the number they are; Python would not convert them."""
    length = b"0" * 5000 + b"1"
    assert _raw(s, b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\nx" % length).startswith(
        b"HTTP/1.1 200"
    )
    reply = _raw(s, b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nContent-Length: %s\r\n\r\nx" % length)
    _json_refusal(reply, 400, "invalid_audio")
    _json_refusal(_raw(s, b"GET /health HTTP/1.1\r\nContent-Length: %s\r\n\r\n" % (b"9" * 5001)), 400, "invalid_http")


def _cannot_parse(s: Servers) -> None:
    _json_refusal(_raw(s, b"GET / HTTP/1.1\r\nHost x\r\n\r\n"), 400, "invalid_http")
    no_key = b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    _json_refusal(_raw(s, no_key), 400, "invalid_websocket_handshake")


def _head_never_ends(s: Servers) -> None:
    started = time.monotonic()
    _json_refusal(_raw(s, b"GET /health HTTP/1.1\r\n", b"Host: x\r\n", pause=0.6), 408, "request_timeout")
    _json_refusal(_raw(s), 408, "request_timeout")  # a connection that sends nothing
    assert time.monotonic() - started < 2 * LIMITS["header_timeout_seconds"] + 2


def _head_too_large(s: Servers) -> None:
    reply = _raw(s, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n")
    _json_refusal(reply, 431, "headers_too_large")


def _upload(size: int) -> bytes:
    return b"POST /v1/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\nContent-Length: %d\r\n\r\n" % size


def _upload_stops(s: Servers) -> None:
    _json_refusal(_raw(s, _upload(100_000), b"\0" * 1000), 408, "request_timeout")


def _upload_trickles(s: Servers) -> None:
    reply = _raw(s, _upload(100_000), *[b"\0" * 100] * 12, pause=0.2)
    _json_refusal(reply, 408, "request_timeout")
    assert b"ASR_MIN_UPLOAD_BYTES_PER_SECOND" in reply


def _too_many_connections(s: Servers) -> None:
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.create_connection(address(s.limited)))
            for _ in range(LIMITS["max_connections"] + 1)
        ]
        readable, _, _ = select.select(socks, [], [], LIMITS["header_timeout_seconds"] / 2)
        assert readable, "no connection was refused"
        readable[0].settimeout(5)
        _json_refusal(until_closed(readable[0]), 503, "too_many_connections")
    wait_until(lambda: httpx.get(f"{s.limited}/health").status_code == 200)


def _idle_keep_alive(s: Servers) -> None:
    with socket.create_connection(address(s.limited)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(5)
        started = time.monotonic()
        reply = until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200") and time.monotonic() - started < LIMITS["keep_alive_seconds"] + 2


def _changes_channels(s: Servers) -> None:
    mono, stereo = adts(_speech(16000), 16000), adts(_speech(16000, 2), 16000)
    _reads(_post(s.limited, mono + stereo, "a.aac"), f"{TEXT} {TEXT}", 0.35)


def _claims_too_long(s: Servers) -> None:
    flac = claiming(encode(_speech(16000), 16000, "flac"), LIMITS["max_duration_seconds"] + 1, 16000)
    _error(_post(s.limited, flac, "a.flac"), 413, "audio_too_long")


def _odd_rate_stream(s: Servers) -> None:
    rate = 191999
    speech = torch.cat([torch.zeros(rate // 2), _speech(rate)[0], torch.zeros(rate)])
    audio = (speech * 32767).to(torch.int16).numpy().tobytes()
    with connect(_ws(s)) as ws:
        ws.send(json.dumps({"config": {"sample_rate": rate}}))
        replies = session(ws, audio, 2 * rate // 10)
    assert cer([TEXT], [next(r["text"] for r in replies if "result" in r)]) <= 0.35


def _huge_float_stream(s: Servers) -> None:
    speech = torch.cat([_speech(16000)[0] * 1e30, torch.zeros(16000)])
    with connect(_ws(s)) as ws:
        ws.send(json.dumps({"config": {"sample_rate": 16000, "encoding": "pcm_f32le"}}))
        replies = session(ws, speech.numpy().tobytes(), 12800)
    assert any("result" in r for r in replies)


HTTP_CASES = [
    Case("empty body", "400 `invalid_audio`", lambda s: _error(_post(s.limited, b""), 400, "invalid_audio")),
    Case(
        "WAV cut off halfway",
        "200: the words in the part that arrived",
        lambda s: _reads(_post(s.limited, _damaged("wav", "truncated")), "open the garage", 0.5),
    ),
    Case(
        "FLAC cut off halfway",
        "400 `invalid_audio`",
        lambda s: _error(_post(s.limited, _damaged("flac", "truncated"), "a.flac"), 400, "invalid_audio"),
    ),
    Case(
        "MP3 cut off halfway",
        "200: the words in the part that arrived",
        lambda s: _reads(_post(s.limited, _damaged("mp3", "truncated"), "a.mp3"), "open the garage", 0.5),
    ),
    Case(
        "WAV with 200 random bytes mid-file",
        "200: the text (the noise burst is heard as noise)",
        lambda s: _reads(_post(s.limited, _damaged("wav", "corrupt")), at_most=0.5),
    ),
    Case(
        "FLAC with 200 random bytes mid-file",
        "200: the text (FFmpeg skips the broken frame)",
        lambda s: _reads(_post(s.limited, _damaged("flac", "corrupt"), "a.flac"), at_most=0.5),
    ),
    Case(
        "MP3 with 200 random bytes mid-file",
        "400 `invalid_audio`",
        lambda s: _error(_post(s.limited, _damaged("mp3", "corrupt"), "a.mp3"), 400, "invalid_audio"),
    ),
    Case(
        "text bytes named `notes.wav`",
        "400 `invalid_audio`, naming the file",
        lambda s: _error(_post(s.limited, b"these are not audio bytes" * 9, "notes.wav"), 400, "invalid_audio"),
    ),
    Case(
        "WAV with a header and no samples",
        "400 `invalid_audio`: the audio holds no samples",
        lambda s: _error(_post(s.limited, _wav_without_samples()), 400, "invalid_audio"),
    ),
    Case(
        "the first 50 ms of a word",
        "200 with at most a letter or two",
        lambda s: _at_most_two_letters(_post(s.limited, encode(_speech()[:, :1102], 22050, "wav"))),
    ),  # fmt: skip
    Case(
        "5 s of digital silence",
        "200 with empty text",
        lambda s: _reads(_post(s.limited, encode(torch.zeros(1, 80000), 16000, "wav")), "", 0),
    ),
    Case(
        "speech amplified 20 dB and hard-clipped",
        "200: the text",
        lambda s: _reads(_post(s.limited, encode((_speech() * 10).clamp(-1, 1), 22050, "wav")), at_most=0.5),
    ),
    Case("8 kHz WAV", "200: the text", lambda s: _reads(_post(s.limited, encode(_speech(8000), 8000, "wav")))),
    Case(
        "44.1 kHz FLAC",
        "200: the text",
        lambda s: _reads(_post(s.limited, encode(_speech(44100), 44100, "flac"), "a.flac")),
    ),
    Case(
        "48 kHz stereo MP3",
        "200: the text",
        lambda s: _reads(_post(s.limited, encode(_speech(48000, 2), 48000, "mp3"), "a.mp3")),
    ),
    Case(
        "6-channel (5.1) WAV",
        "200: the text (channels are averaged)",
        lambda s: _reads(_post(s.limited, encode(_speech(48000, 6), 48000, "wav"))),
    ),
    Case(
        "a file longer than `ASR_MAX_DURATION_SECONDS`",
        "413 `audio_too_long`, as soon as decoding passes the limit",
        lambda s: _error(httpx.post(f"{s.limited}/v1/transcribe", content=long_wav(45)[0]), 413, "audio_too_long"),
    ),
    Case(
        "a `Content-Length` past `ASR_MAX_UPLOAD_BYTES`",
        "413 `file_too_large` before the body is read",
        _declared_too_large,
    ),
    Case(
        "a chunked body growing past `ASR_MAX_UPLOAD_BYTES`",
        "413 `file_too_large` while it streams in; the body is never buffered whole",
        _streamed_body_refused_early,
    ),
    Case(
        "multipart with no `file` field",
        "422 `invalid_request`, naming the field",
        lambda s: _error(
            httpx.post(f"{s.limited}/v1/transcribe", files={"audio": ("a.wav", speak(TEXT))}), 422, "invalid_request"
        ),
    ),  # fmt: skip
    Case(
        "OpenAI endpoint without `model`",
        "422 `invalid_request`, naming the field",
        lambda s: _error(
            httpx.post(f"{s.limited}/v1/audio/transcriptions", files={"file": ("a.wav", speak(TEXT))}),
            422,
            "invalid_request",
        ),
    ),  # fmt: skip
    Case(
        "OpenAI endpoint with `response_format=xml`",
        "400 `invalid_response_format`",
        lambda s: _error(
            httpx.post(
                f"{s.limited}/v1/audio/transcriptions",
                files={"file": ("a.wav", speak(TEXT))},
                data={"model": "whisper-1", "response_format": "xml"},
            ),
            400,
            "invalid_response_format",
        ),
    ),  # fmt: skip
    Case(
        "8-channel (7.1) FLAC",
        "200: the text (channels are averaged)",
        lambda s: _reads(_post(s.limited, encode(_speech(16000, 8), 16000, "flac"), "a.flac")),
    ),
    Case(
        "a 60-byte WAV of 8 channels",
        "200 with empty text",
        lambda s: _reads(_post(s.limited, _eight_channel_header()), "", 0),
    ),
    Case(
        "a WAV of 65 channels",
        "400 `invalid_audio`: at most 64 channels",
        lambda s: _error(_post(s.limited, wav_bytes(np.zeros((100, 65)), 16000)), 400, "invalid_audio"),
    ),
    Case(
        "a WAV at 1 Hz",
        "400 `invalid_audio`: the rate must be 4,000 to 192,000 Hz",
        lambda s: _error(_post(s.limited, wav_bytes(np.zeros((600, 1)), 1)), 400, "invalid_audio"),
    ),
    Case(
        "a WAV at 4001 Hz",
        "200: the text (resampled in memory bounded per second of audio)",
        lambda s: _reads(_post(s.limited, encode(_speech(4001), 4001, "wav")), at_most=0.5),
    ),
    Case(
        "float WAV samples near 1e30, batched with good requests",
        "200 for all: samples are clipped to full scale",
        _huge_samples_beside_good_requests,
    ),
    Case(
        "an AAC stream that changes channel count partway",
        "200: the text of both parts",
        _changes_channels,
    ),
    Case(
        "a FLAC whose header claims more than `ASR_MAX_DURATION_SECONDS`",
        "413 `audio_too_long` before decoding",
        _claims_too_long,
    ),
    Case(
        "a hotword of 100,000 letters",
        "400 `invalid_hotwords`, naming the field",
        lambda s: _error(
            httpx.post(
                f"{s.limited}/v1/audio/transcriptions",
                files={"file": ("a.wav", speak(TEXT))},
                data={"model": "whisper-1", "hotwords": "a" * 100_000},
            ),
            400,
            "invalid_hotwords",
        ),
    ),  # fmt: skip
    Case(
        "a client that hangs up mid-upload",
        "499 in the access log and the metrics; no traceback",
        _hangs_up_mid_upload,
    ),
    Case(
        "a `Content-Length` of 5,001 digits",
        "read as the number it is when zeros lead, else 400 `invalid_http`; never a 500",
        _digits_content_length,
    ),
    Case(
        "a request the HTTP parser cannot read, or a bad WebSocket handshake",
        "400 `invalid_http` or `invalid_websocket_handshake`, in the JSON error shape; closed",
        _cannot_parse,
    ),
    Case(
        "a connection whose request head never ends, or never starts",
        "408 `request_timeout` after `ASR_HEADER_TIMEOUT_SECONDS`; closed",
        _head_never_ends,
    ),
    Case(
        "a request head past `ASR_MAX_HEADER_BYTES`",
        "431 `headers_too_large`; closed",
        _head_too_large,
    ),
    Case(
        "an upload that stops midway",
        "408 `request_timeout` after `ASR_BODY_TIMEOUT_SECONDS`",
        _upload_stops,
    ),
    Case(
        "an upload that trickles in",
        "408 `request_timeout` below `ASR_MIN_UPLOAD_BYTES_PER_SECOND`",
        _upload_trickles,
    ),
    Case(
        "more connections than `ASR_MAX_CONNECTIONS`",
        "503 `too_many_connections`, closed at once; `/health` answers once they go",
        _too_many_connections,
    ),
    Case(
        "an idle keep-alive connection",
        "closed after `ASR_KEEP_ALIVE_SECONDS`",
        _idle_keep_alive,
    ),
]

LOAD_CASES = [
    Case(
        "a request while `ASR_MAX_QUEUE` clips wait",
        "503 `overloaded` with `Retry-After: 1`; accepted work goes on",
        _overloaded,
    ),
    Case(
        "a file past `ASR_REQUEST_TIMEOUT_SECONDS`",
        "504 `deadline_exceeded`; its queued windows are dropped",
        _past_deadline,
    ),  # fmt: skip
    Case(
        "a client that disconnects while its file is transcribed",
        "the transcription is cancelled; its queued windows never run",
        _client_gone,
    ),
]

STREAM_CASES = [
    Case(
        "a text message that is not a command",
        "error message, close 1003",
        lambda s: _closes(s, ['{"transcribe": true}'], 1003, 'expected {"config": {...}}'),
    ),  # fmt: skip
    Case(
        "malformed JSON",
        "error message, close 1007",
        lambda s: _closes(s, ["{not json"], 1007, "text messages must be JSON"),
    ),  # fmt: skip
    Case(
        "a config with `sample_rate` 100",
        "error message, close 1007",
        lambda s: _closes(s, ['{"config": {"sample_rate": 100}}'], 1007, "sample_rate must be a number"),
    ),  # fmt: skip
    Case(
        "a config with `encoding` mulaw",
        "error message, close 1007",
        lambda s: _closes(s, ['{"config": {"encoding": "mulaw"}}'], 1007, "encoding must be one of"),
    ),  # fmt: skip
    Case(
        "a config after audio",
        "taken, as Vosk does; a new rate ends the open utterance and the stream goes on at that rate",
        _config_after_audio,
    ),
    Case(
        "16-bit PCM in messages of an odd number of bytes",
        "one reply per message; a split sample waits for the next message",
        _odd_bytes,
    ),
    Case("float PCM (`pcm_f32le`)", "partials and results, as for 16-bit PCM", _float_audio),
    Case(
        "NaN or infinity in `pcm_f32le` audio",
        "error message, close 1007",
        lambda s: _closes(
            s,
            ['{"config": {"encoding": "pcm_f32le"}}', torch.tensor([0.1, float("nan")] * 100).numpy().tobytes()],
            1007,
            "pcm_f32le audio must",
        ),
    ),  # fmt: skip
    Case(
        "a message past `ASR_STREAM_MAX_MESSAGE_BYTES`",
        "error message naming the limit, close 1009",
        lambda s: _closes(
            s, [b"\0" * (LIMITS["stream_max_message_bytes"] + 2)], 1009, "a message may hold at most 262144 bytes"
        ),
    ),
    Case("audio after `eof`", "the last result, close 1000; the rest is ignored", _audio_after_eof),
    Case(
        "a client silent past `ASR_STREAM_IDLE_SECONDS`",
        "error message, close 1008",
        lambda s: _closes(s, [], 1008, "no message for 1.5 s"),
    ),  # fmt: skip
    Case("a client that vanishes mid-stream", "the stream is dropped; the server goes on", _disconnect_mid_stream),
    Case("more streams than `ASR_MAX_STREAMS`", "error message, close 1013", _too_many_streams),
    Case(
        "a config with `sample_rate` 191999",
        "partials and results (resampled off the event loop, in bounded memory)",
        _odd_rate_stream,
    ),
    Case("`pcm_f32le` samples near 1e30", "partials and results (clipped to full scale)", _huge_float_stream),
    Case(
        "a `phrase_list` word of 100,000 letters",
        "error message, close 1007",
        lambda s: _closes(s, [json.dumps({"config": {"phrase_list": ["a" * 100_000]}})], 1007, "phrase_list:"),
    ),
    Case(
        "JSON nested 100,000 deep",
        "error message, close 1007",
        lambda s: _closes(s, ["[" * 100_000], 1007, "text messages must be JSON nested"),
    ),
]

ELSEWHERE = {
    "an exception inside a batch": (
        "500 `internal_error` naming it, for that batch's requests only; the worker goes on",
        "tests/test_service.py::test_a_failure_inside_recognition_is_a_json_500_naming_it_and_the_service_goes_on",
    ),
    "one clip that fails the model, batched with others": (
        "the batch runs again in halves: only that clip's request fails",
        "tests/test_batching.py::test_a_batch_that_fails_runs_again_without_the_culprit_so_only_the_culprit_fails",
    ),
    "out of device memory in a batch": (
        "the batch runs in halves, down to single clips; only a clip too big alone fails",
        "tests/test_batching.py::test_out_of_memory_splits_the_batch_until_it_fits_and_fails_only_a_clip_too_big_alone",
    ),
    "SIGTERM": (
        "drain: 503 to new work, streams get their last result and 1001, work in flight finishes, exit 0",
        "tests/test_shutdown.py::test_sigterm_refuses_new_work_finishes_what_is_in_flight_and_exits_0",
    ),
    "a second SIGTERM": (
        "the drain ends at once: work in flight gets 503 `shutting_down`, exit 0; a third signal stops at once",
        "tests/test_shutdown.py::test_a_second_sigterm_ends_the_drain_with_json_503s_for_work_and_uploads_in_flight",
    ),
    "an upload still arriving when the drain ends": (
        "503 `shutting_down`",
        "tests/test_shutdown.py::test_work_still_running_when_the_drain_time_is_up_fails_with_a_503_and_the_exit_is_still_0",
    ),
    "distinct sets of hotwords the lexicon lacks, one after another": (
        "one word tree with hotwords at a time (about 100 MB), not one per set",
        "tests/test_beam.py::test_hotword_sets_cost_memory_once_not_each",
    ),
    "a request to `/v1/` without a valid API key": (
        "401 `invalid_api_key`, the same for a missing, malformed or wrong key",
        "tests/test_access.py::test_a_missing_or_wrong_key_is_one_401_that_tells_nothing_more",
    ),
    "a stream without a valid API key": (
        "error message, close 1008",
        "tests/test_access.py::test_a_stream_without_a_key_gets_an_error_and_1008",
    ),
    "a CORS preflight from an origin not configured": (
        "no CORS headers, so the browser refuses",
        "tests/test_access.py::test_cors_admits_the_configured_origin_only",
    ),
    "an API key in a query string, header or Referer, behind `deploy/nginx.conf`": (
        "in no log line of nginx or of the service",
        "tests/test_proxy.py::test_keys_and_forged_lines_reach_no_log_of_the_proxy_or_the_replicas",
    ),
    "a `%0a` in a path, with `ASR_LOG_FORMAT=text`": (
        "escaped: the access line stays one line",
        "tests/test_access.py::test_the_text_format_keeps_each_message_on_its_line_so_a_path_cannot_forge_one",
    ),
    "random or damaged bytes as an audio file (fuzzed)": (
        "audio, or a decode error (400); nothing else",
        "tests/test_fuzz.py::test_decoding_damaged_files_gives_audio_or_a_decode_error",
    ),
    "random text and binary WebSocket messages (fuzzed)": (
        "one reply per audio message, or an error message and close 1003 or 1007",
        "tests/test_fuzz.py::test_any_audio_bytes_get_one_reply_each_or_a_1007",
    ),
    "any channel count and sample rate in a WAV header (fuzzed)": (
        "audio of 1 to 64 channels at 4 to 192 kHz, or a decode error (400)",
        "tests/test_fuzz.py::test_any_channel_count_and_sample_rate_in_a_header_gives_audio_or_a_decode_error",
    ),
    "finite float samples of any size, in files and streams (fuzzed)": (
        "audio within full scale; replies, never an error",
        "tests/test_fuzz.py::test_finite_float_audio_of_any_size_gets_replies_never_an_error",
    ),
    "hotwords of any size (fuzzed)": (
        "at most 100 words of 48 letters, or 400 naming `hotwords`",
        "tests/test_fuzz.py::test_hotwords_of_any_size_are_bounded_or_refused_by_name",
    ),
}
"""Rows of the docs table that other test modules check, and the test that does."""
CASES = HTTP_CASES + LOAD_CASES + STREAM_CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(servers, case):
    case.check(servers)
    assert httpx.get(f"{servers.limited}/health").status_code == 200


def test_no_case_made_the_server_answer_500_or_log_a_traceback(servers):
    text = servers.log.read_text()
    assert " 500 " not in text and "Traceback" not in text


def test_the_docs_table_lists_every_case():
    rows = re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|$", (ROOT / "docs/reliability.md").read_text(), re.MULTILINE)
    documented = {name: outcome for name, outcome in rows if name not in ("input or fault", "---")}
    expected = {case.name: case.outcome for case in CASES} | {name: o for name, (o, _) in ELSEWHERE.items()}
    assert documented == expected


@pytest.mark.parametrize("name", ELSEWHERE)
def test_each_row_checked_elsewhere_has_its_test(name):
    path, test = ELSEWHERE[name][1].split("::")
    assert f"def {test}(" in (ROOT / path).read_text()


def test_concurrent_bad_input_does_not_disturb_good_requests(servers):
    good: list[httpx.Response] = []
    threads = [threading.Thread(target=lambda: good.append(_post(servers.limited, speak(TEXT)))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(8):
        _error(_post(servers.limited, b"garbage" * 50, "x.mp3"), 400, "invalid_audio")
    for thread in threads:
        thread.join(60)
    assert [r.status_code for r in good] == [200] * 4

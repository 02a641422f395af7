"""``asr stream``: an audio file through the service's WebSocket, as a live source would send it."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from typing import TextIO

import av
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import connect

from client.transcribe import Unreachable

RATE = 16000
_UNUSABLE = (1008, 1013)
"""Close codes that say the server cannot be used now: a refused API key, or no room for the stream."""


class StreamFailed(RuntimeError):
    """The server ended the stream with an error message."""


class NoMicrophone(RuntimeError):
    """``--mic`` was asked for where no microphone can be opened."""


def pcm(path: str, chunk_ms: float) -> Iterator[bytes]:
    """The file's audio as 16 kHz mono 16-bit PCM, in chunks of ``chunk_ms``: FFmpeg decodes and resamples."""
    size = round(RATE * chunk_ms / 1000) * 2
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    pending = b""
    with av.open(path) as container:
        for frame in container.decode(audio=0):
            for piece in resampler.resample(frame):
                pending += bytes(piece.planes[0])[: piece.samples * 2]
                while len(pending) >= size:
                    yield pending[:size]
                    pending = pending[size:]
        for piece in resampler.resample(None):
            pending += bytes(piece.planes[0])[: piece.samples * 2]
    for start in range(0, len(pending), size):
        yield pending[start : start + size]


def microphone(chunk_ms: float) -> Iterator[bytes]:
    """The default input device as 16 kHz mono 16-bit PCM chunks, until Ctrl-C: through PortAudio,
    with the ``sounddevice`` package (not a dependency: only this option needs it). Checked now,
    before any connection is made."""
    try:
        import sounddevice
    except (ImportError, OSError) as error:
        message = f"--mic needs PortAudio and the sounddevice package (pip install sounddevice): {error}"
        raise NoMicrophone(message) from None
    return _record(sounddevice, round(RATE * chunk_ms / 1000))


def _record(sounddevice, frames: int) -> Iterator[bytes]:
    try:
        with sounddevice.RawInputStream(samplerate=RATE, channels=1, dtype="int16", blocksize=frames) as source:
            while True:
                data, _ = source.read(frames)
                yield bytes(data)
    except sounddevice.PortAudioError as error:
        raise NoMicrophone(f"no microphone to record from: {error}") from None
    except KeyboardInterrupt:
        return


def stream(
    url: str,
    headers: dict,
    chunks: Iterator[bytes],
    config: dict,
    real_time: bool,
    out: TextIO = sys.stdout,
    partials: TextIO = sys.stderr,
) -> int:
    """Send the chunks (paced like a live source with ``real_time``), print partials in place on
    ``partials`` and each final on its own line on ``out``; return how many finals there were."""
    finals, shown, ws = 0, "", None

    def show(reply: dict) -> None:
        nonlocal finals, shown
        if "error" in reply:
            raise StreamFailed(reply["error"])
        if reply.get("partial") is not None:
            if reply["partial"] != shown:  # a reply between two partial reads repeats the last one
                shown = reply["partial"]
                partials.write(f"\r\x1b[K{shown}")
                partials.flush()
        elif reply.get("text"):
            shown = ""
            partials.write("\r\x1b[K")
            out.write(reply["text"] + "\n")
            out.flush()
            finals += 1

    try:
        with connect(url, additional_headers=headers, max_size=None) as ws:
            ws.send(json.dumps({"config": {"sample_rate": RATE, "words": False, **config}}))
            started, sent = time.monotonic(), 0.0
            for chunk in chunks:
                ws.send(chunk)
                show(json.loads(ws.recv(timeout=60)))
                sent += len(chunk) / 2 / RATE
                if real_time:
                    time.sleep(max(0.0, started + sent - time.monotonic()))
            ws.send('{"eof" : 1}')
            show(json.loads(ws.recv(timeout=60)))
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
        failure = Unreachable if code in _UNUSABLE else StreamFailed
        raise failure(_why_closed(ws, closed)) from None
    except InvalidStatus as error:
        raise Unreachable(f"the server refused the stream: HTTP {error.response.status_code}") from None
    except (OSError, WebSocketException) as error:
        raise Unreachable(f"cannot stream to {url}: {error}") from None
    return finals


def _why_closed(ws, closed: ConnectionClosed) -> str:
    """The server's ``{"error"}`` that came before its close (a send can fail before it is read), else the code."""
    try:
        while ws is not None:
            reply = json.loads(ws.recv(timeout=0))
            if "error" in reply:
                return reply["error"]
    except (ConnectionClosed, TimeoutError, ValueError):
        pass
    frame = closed.rcvd
    return f"the server closed the stream: code {frame.code} {frame.reason}".rstrip() if frame else str(closed)

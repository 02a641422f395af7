"""Shared test helpers: real speech from espeak-ng, so no test depends on shipped audio."""

from __future__ import annotations

import io
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile
import torch

from asr.audio import decode
from bench.serving import serve
from training.voices import Prosody, Voice, synthesise


def speak(text: str, voice: str = "en-us", rate: int = 150) -> bytes:
    """WAV bytes (22.05 kHz mono, 16-bit) of ``text`` spoken by espeak-ng at ``rate`` words per minute."""
    waveform, sample_rate = synthesise(Voice("espeak-ng", voice, "male"), text, Prosody(rate=rate / 175))
    buffer = io.BytesIO()
    soundfile.write(buffer, waveform[0].numpy(), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_chapter(folder: Path, speaker: int, chapter: int, clips: list[tuple[str, bytes]]) -> Path:
    """``clips`` (text, audio) as one chapter in the LibriSpeech layout, FLAC and transcript, under ``folder``."""
    chapter_dir = folder / str(speaker) / str(chapter)
    chapter_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, (text, audio) in enumerate(clips):
        utterance = f"{speaker}-{chapter}-{number:04d}"
        waveform, rate = decode(audio)
        soundfile.write(chapter_dir / f"{utterance}.flac", waveform[0].numpy(), rate)
        lines.append(f"{utterance} {text.upper()}\n")
    (chapter_dir / f"{speaker}-{chapter}.trans.txt").write_text("".join(lines))
    return folder


def address(url: str) -> tuple[str, int]:
    """The host and port of an ``http://host:port`` URL, for a raw socket."""
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reply's head and body may come apart)."""
    return b"".join(iter(lambda: sock.recv(65536), b""))


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def speech() -> tuple[torch.Tensor, int]:
    return decode(speak("set a timer for twenty minutes"))


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``python -m service`` on a loopback port, serving the bundled model; yields its URL and log file.

    In fp32, so that tests may compare its transcripts with one-clip reads: int8's activation
    scales follow the batch, so under int8 a clip's text can depend on its batch-mates.
    """
    log = tmp_path_factory.mktemp("server") / "server.log"
    with serve(log, device="cpu", precision="fp32") as (url, process):
        yield url, log
        process.terminate()
        # uvicorn shuts down gracefully on SIGTERM, then re-raises it, so the exit status is the signal's.
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text(), log.read_text()

"""Starting the real service for a benchmark or a test, and the speech and audio files they send it."""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import httpx
import numpy as np
import torch

from asr import audio
from asr.features import FeatureConfig, prepare_waveform
from training.data import read_transcripts
from training.voices import Prosody, Voice, synthesise

SENTENCES = [
    "turn off the kitchen lights",
    "what time is it in tokyo",
    "call alice on monday morning",
    "play some music in the living room",
    "set a timer for twenty minutes",
    "open the garage door please",
    "is it going to rain this afternoon",
    "read me the latest news",
]


@contextmanager
def serve(log: Path | None = None, **settings: object) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python -m service`` on a free loopback port with ``ASR_*`` settings, until it is ready.

    Yields its URL and process; its output goes to ``log`` (else to this process's). A server
    still running when the block ends is stopped with SIGTERM.
    """
    port = free_port()
    env = {**os.environ, "ASR_HOST": "127.0.0.1", "ASR_PORT": str(port)}
    env.update({f"ASR_{k.upper()}": str(v) for k, v in settings.items()})
    output = log.open("wb") if log else None
    process = subprocess.Popen(
        [sys.executable, "-m", "service"], env=env, stdout=output, stderr=subprocess.STDOUT if log else None
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


def speech(text: str, voice: str = "en-us", rate: float = 1.0, sample_rate: int = 16000) -> torch.Tensor:
    """``text`` spoken by espeak-ng, as mono samples at ``sample_rate``."""
    waveform, original = synthesise(Voice("espeak-ng", voice, "male"), text, Prosody(rate=rate))
    return prepare_waveform(waveform, original, FeatureConfig(sample_rate=sample_rate))


def corpus_split(folder: Path, limit: int | None = None) -> tuple[list[torch.Tensor], list[str]]:
    """A corpus split's first ``limit`` recordings as 16 kHz mono waveforms, and their transcripts."""
    items = read_transcripts(folder)[:limit]
    return [prepare_waveform(*audio.decode(path)) for _, path, _ in items], [text for _, _, text in items]


FORMATS = {
    "wav": ("wav", "pcm_s16le"),
    "flac": ("flac", "flac"),
    "mp3": ("mp3", "libmp3lame"),
    "ogg": ("ogg", "vorbis"),
    "opus": ("ogg", "libopus"),
    "webm": ("webm", "libopus"),
    "m4a": ("ipod", "aac"),
}
"""Container and codec of each audio format the service must read."""


def encode(waveform: torch.Tensor, sample_rate: int, kind: str) -> bytes:
    """``(channels, samples)`` audio as a file of ``kind`` (a key of :data:`FORMATS`), encoded by FFmpeg."""
    container, codec = FORMATS[kind]
    layout = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}[waveform.shape[0]]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=sample_rate, layout=layout)
        if codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        # Packed: PyAV's planar conversion fails from 8 channels on.
        interleaved = waveform.numpy().astype(np.float32).T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(interleaved, format="flt", layout=layout)
        frame.sample_rate = sample_rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()


def gauge(metrics_text: str, name: str) -> float:
    """The value of an unlabelled series in the service's Prometheus ``/metrics`` text."""
    return float(re.search(rf"^{name} (\S+)$", metrics_text, re.MULTILINE)[1])


def resident_mb(pid: int, field: str = "VmRSS") -> float:
    """The process's resident memory now (``VmRSS``) or at its peak so far (``VmHWM``), in MB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith(field))
    return int(line.split()[1]) / 1024

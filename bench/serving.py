"""Starting the real service for a benchmark, and the speech the benchmarks send it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import torch

from asr.features import FeatureConfig, prepare_waveform
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
def serve(**settings: object) -> Iterator[tuple[str, int]]:
    """``python -m service`` on a free loopback port with ``ASR_*`` settings; yields its URL and pid."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ASR_PORT": str(port), "ASR_LOG_LEVEL": "warning"}
    env.update({f"ASR_{k.upper()}": str(v) for k, v in settings.items()})
    process = subprocess.Popen([sys.executable, "-m", "service"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise RuntimeError("the service did not become ready in 60 s")
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def speech(text: str, voice: str = "en-us", rate: float = 1.0, sample_rate: int = 16000) -> torch.Tensor:
    """``text`` spoken by espeak-ng, as mono samples at ``sample_rate``."""
    waveform, original = synthesise(Voice("espeak-ng", voice, "male"), text, Prosody(rate=rate))
    return prepare_waveform(waveform, original, FeatureConfig(sample_rate=sample_rate))


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024

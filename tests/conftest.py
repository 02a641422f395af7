"""Shared test helpers: real speech from espeak-ng, so no test depends on shipped audio."""

from __future__ import annotations

import io

import pytest
import soundfile
import torch

from asr.audio import decode
from training.voices import Prosody, Voice, synthesise


def speak(text: str, voice: str = "en-us", rate: int = 150) -> bytes:
    """WAV bytes (22.05 kHz mono, 16-bit) of ``text`` spoken by espeak-ng at ``rate`` words per minute."""
    waveform, sample_rate = synthesise(Voice("espeak-ng", voice, "male"), text, Prosody(rate=rate / 175))
    buffer = io.BytesIO()
    soundfile.write(buffer, waveform[0].numpy(), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def speech() -> tuple[torch.Tensor, int]:
    return decode(speak("set a timer for twenty minutes"))

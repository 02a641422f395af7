"""Live audio cut into utterances by a voice-activity detector: the pure half of streaming recognition.

The model reads each utterance in both directions, so it cannot extend a hypothesis frame by
frame. A stream is therefore cut at pauses by a voice-activity detector (with a maximum utterance
length for speech that never pauses): the open utterance is read at a fixed cadence for partial
text (incrementally, see asr/incremental.py), and read in full once more when it closes for the
final result. The detector is Silero's network (:mod:`service.silero`) or a level against the
noise floor (:class:`EnergyDetector`). This module only does the bookkeeping; the Vosk session
(:mod:`service.vosk`) runs the reads.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from asr.features import resample
from service import silero


@dataclass(frozen=True)
class VadConfig:
    """Where utterances end. The first three are settings (``ASR_STREAM_*``, whose defaults live in
    :class:`service.settings.Settings`); the detector's own constants follow."""

    endpoint_silence_ms: float
    """A pause this long closes the open utterance."""
    max_utterance_seconds: float
    """Speech that never pauses is cut into utterances this long."""
    partial_interval_ms: float
    """New audio in the open utterance between two partial reads."""
    detector: Literal["neural", "energy"]
    """Silero's network, or the level against the noise floor."""
    speech_probability: float = 0.5
    """The network's probability above which a chunk starts speech..."""
    silence_probability: float = 0.35
    """...and below which speech ends (Silero's own hysteresis)."""
    speech_margin_db: float = 12.0
    """A frame is speech when it is this much louder than the noise floor..."""
    floor_seconds: float = 2.0
    """...the quietest frame this far back..."""
    min_speech_dbfs: float = -50.0
    """...and louder than this, whatever the floor."""
    preroll_ms: float = 200.0
    """Audio kept from before the detected onset, so that soft first sounds are not cut off."""
    onset_ms: float = 30.0
    """Speech this long opens an utterance (shorter clicks do not)."""


@dataclass(frozen=True)
class Utterance:
    start: float
    """Seconds from the start of the stream."""
    audio: torch.Tensor
    rate: int
    """The stream's rate, which a config may change between utterances."""


_FRAME_SECONDS = 0.01


class Detector(Protocol):
    def speech(self, frames: torch.Tensor) -> list[bool]:
        """Whether each of the stream's next ``(n, samples)`` 10 ms frames is speech."""
        ...


class EnergyDetector:
    """A frame is speech when louder than the noise floor: the quietest frame of the last ``floor_seconds``.

    Speech always has quiet moments, so the floor stays at the background level during speech and
    follows it when it changes, without calibration; but loud noise or music passes for speech.
    """

    def __init__(self, config: VadConfig):
        self.config = config
        self._frames = 0
        self._levels: deque[tuple[int, float]] = deque()
        """(frame number, level) of the frames that may yet be the quietest of the floor window."""

    def speech(self, frames: torch.Tensor) -> list[bool]:
        levels = (10 * torch.log10(frames.square().mean(dim=1) + 1e-10)).tolist()
        return [self._is_speech(level) for level in levels]

    def _is_speech(self, level: float) -> bool:
        self._frames += 1
        while self._levels and self._levels[-1][1] >= level:
            self._levels.pop()
        self._levels.append((self._frames, level))
        if self._levels[0][0] <= self._frames - self.config.floor_seconds * 100:
            self._levels.popleft()
        return level > max(self._levels[0][1] + self.config.speech_margin_db, self.config.min_speech_dbfs)


class NeuralDetector:
    """Silero's network on the stream resampled to 16 kHz, one 32 ms chunk at a time.

    A frame takes the decision of the last chunk that ended with it or before it, so decisions lag the
    audio by up to one chunk; speech starts above ``speech_probability`` and ends below
    ``silence_probability``.
    """

    def __init__(self, sample_rate: int, config: VadConfig, start: float = 0.0):
        """``start``: seconds of the client's stream before this audio (a stream whose format changed goes on)."""
        self.rate, self.config, self.start = sample_rate, config, start
        self._probabilities = silero.SpeechProbabilities()
        self._fed = 0
        """16 kHz samples given to the network so far."""
        self._chunks = 0
        """Chunks it has decided."""
        self._speaking = False

    def speech(self, frames: torch.Tensor) -> list[bool]:
        start = self._fed
        audio = resample(frames.flatten(), self.rate, silero.RATE)
        probabilities = self._probabilities.feed(audio).tolist()
        self._fed += audio.numel()
        step = audio.numel() / len(frames)
        decisions, next_chunk = [], 0
        for i in range(len(frames)):
            frame_end = start + (i + 1) * step
            while next_chunk < len(probabilities) and (self._chunks + 1) * silero.CHUNK <= frame_end:
                self._decide(probabilities[next_chunk])
                next_chunk += 1
            decisions.append(self._speaking)
        for probability in probabilities[next_chunk:]:
            self._decide(probability)
        return decisions

    def _decide(self, probability: float) -> None:
        self._chunks += 1
        if probability >= self.config.speech_probability:
            self._speaking = True
        elif probability < self.config.silence_probability:
            self._speaking = False


class Stream:
    """The audio of one stream at its own rate, split into utterances as it arrives."""

    def __init__(self, sample_rate: int, config: VadConfig, start: float = 0.0):
        """``start``: seconds of the client's stream before this audio (a stream whose format changed goes on)."""
        self.rate, self.config, self.start = sample_rate, config, start
        self.frame = max(1, round(sample_rate * _FRAME_SECONDS))
        self.detector: Detector = (
            NeuralDetector(sample_rate, config) if config.detector == "neural" else EnergyDetector(config)
        )
        self._leftover = torch.zeros(0)
        self._position = 0
        """Samples of the stream framed so far."""
        self._preroll: deque[torch.Tensor] = deque(maxlen=max(1, round(config.preroll_ms / 10)))
        self._onset = 0
        self._open: list[torch.Tensor] | None = None
        self._open_start = 0
        self._open_samples = 0
        self._silent = 0
        self._read_at = 0

    @property
    def is_open(self) -> bool:
        return self._open is not None

    def feed(self, samples: torch.Tensor) -> list[Utterance]:
        """Add mono float samples; return the utterances this audio closed."""
        samples = torch.cat([self._leftover, samples.float()])
        usable = samples.numel() // self.frame * self.frame
        self._leftover = samples[usable:]
        frames = samples[:usable].view(-1, self.frame)
        if not len(frames):
            return []
        closed = []
        for frame, speech in zip(frames, self.detector.speech(frames), strict=True):
            closed += self._step(frame, speech)
        return closed

    def open_utterance(self) -> Utterance | None:
        if self._open is None or not self._open:
            return None
        return self._utterance(self._open)

    @property
    def end(self) -> float:
        """Seconds from the start of the client's stream to the end of the audio fed so far."""
        return self.start + (self._position + self._leftover.numel()) / self.rate

    def partial_due(self) -> bool:
        """Whether the open utterance has grown by a partial interval since it was last read."""
        interval = self.config.partial_interval_ms / 1000 * self.rate
        return self._open is not None and self._open_samples - self._read_at >= interval

    def mark_read(self) -> None:
        self._read_at = self._open_samples

    def flush(self) -> Utterance | None:
        """Close the open utterance now (end of stream or reset), with the unframed tail."""
        if self._open is not None and self._leftover.numel():
            self._open.append(self._leftover)
        self._position += self._leftover.numel()
        self._leftover = torch.zeros(0)
        utterance = self.open_utterance()
        self._open = None
        return utterance

    def _step(self, frame: torch.Tensor, speech: bool) -> list[Utterance]:
        self._position += frame.numel()
        config = self.config
        if self._open is None:
            self._preroll.append(frame)
            self._onset = self._onset + 1 if speech else 0
            if self._onset * 10 >= config.onset_ms:
                self._open = list(self._preroll)
                self._open_start = self._position - sum(f.numel() for f in self._preroll)
                self._open_samples = sum(f.numel() for f in self._open)
                self._silent = self._read_at = 0
                self._preroll.clear()
            return []
        self._open.append(frame)
        self._open_samples += frame.numel()
        self._silent = 0 if speech else self._silent + 1
        if self._silent * 10 >= config.endpoint_silence_ms:
            # Keep a little of the pause: the model saw trailing silence in training too.
            keep = len(self._open) - self._silent + round(config.preroll_ms / 10)
            utterance = self._utterance(self._open[:keep])
            self._open, self._onset = None, 0
            return [utterance]
        if self._open_samples >= config.max_utterance_seconds * self.rate:
            utterance = self._utterance(self._open)
            self._open, self._open_start, self._open_samples = [], self._position, 0
            self._silent = self._read_at = 0
            return [utterance]
        return []

    def _utterance(self, frames: list[torch.Tensor]) -> Utterance:
        return Utterance(self.start + self._open_start / self.rate, torch.cat(frames), self.rate)

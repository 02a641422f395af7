"""Live audio cut into utterances by an energy voice-activity detector: the pure half of streaming recognition.

The model reads each utterance in both directions, so it cannot extend a hypothesis frame by
frame. A stream is therefore cut at pauses by an energy voice-activity detector (with a
maximum utterance length for speech that never pauses): the open utterance is read at a fixed
cadence for partial text (incrementally, see asr/incremental.py), and read in full once more when
it closes for the final result. This module only does the bookkeeping; the Vosk session
(:mod:`service.vosk`) runs the reads.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import torch


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
    """Mono samples at the stream's rate."""


_FRAME_SECONDS = 0.01


class Stream:
    """The audio of one stream at its own rate, split into utterances as it arrives."""

    def __init__(self, sample_rate: int, config: VadConfig):
        self.rate, self.config = sample_rate, config
        self.frame = max(1, round(sample_rate * _FRAME_SECONDS))
        self._leftover = torch.zeros(0)
        self._position = 0
        """Samples of the stream framed so far."""
        self._frames = 0
        self._levels: deque[tuple[int, float]] = deque()
        """(frame number, level) of the frames that may yet be the quietest of the floor window."""
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
        levels = (10 * torch.log10(frames.square().mean(dim=1) + 1e-10)).tolist()
        closed = []
        for frame, level in zip(frames, levels, strict=True):
            closed += self._step(frame, self._is_speech(level))
        return closed

    def open_utterance(self) -> Utterance | None:
        if self._open is None or not self._open:
            return None
        return Utterance(self._open_start / self.rate, torch.cat(self._open))

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

    def _is_speech(self, level: float) -> bool:
        """Louder than the noise floor: the quietest frame of the last ``floor_seconds``.

        Speech always has quiet moments, so the floor stays at the background level during speech
        and follows it when it changes, without calibration.
        """
        self._frames += 1
        while self._levels and self._levels[-1][1] >= level:
            self._levels.pop()
        self._levels.append((self._frames, level))
        if self._levels[0][0] <= self._frames - self.config.floor_seconds * 100:
            self._levels.popleft()
        return level > max(self._levels[0][1] + self.config.speech_margin_db, self.config.min_speech_dbfs)

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
            utterance = Utterance(self._open_start / self.rate, torch.cat(self._open[:keep]))
            self._open, self._onset = None, 0
            return [utterance]
        if self._open_samples >= config.max_utterance_seconds * self.rate:
            utterance = Utterance(self._open_start / self.rate, torch.cat(self._open))
            self._open, self._open_start, self._open_samples = [], self._position, 0
            self._silent = self._read_at = 0
            return [utterance]
        return []

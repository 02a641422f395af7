"""A recogniser without a model, for what the service does around recognition: protocols, limits, errors, formats.

It hears :attr:`FakeRecogniser.text` in any clip with sound in it, spelled one letter per 20 ms frame from the
clip's first loud frame on (nothing in a silent clip), and decodes with the real greedy decoder, so words get
times and confidences as the model's would. Reads can be held (:attr:`FakeRecogniser.hold`) to test deadlines,
queues and cancellation.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, replace

import torch

from asr.beam import Beam
from asr.decoding import Greedy, greedy_decode
from asr.incremental import Settled
from asr.text import NUM_CLASSES, encode
from asr.transcriber import Decoding
from asr.transcript import Transcript
from service.batching import Stopped
from service.recogniser import StreamRead

FRAME_SECONDS = 0.02
LOUD = 1e-3
"""A frame's mean square above which it holds sound."""


def spelling(text: str, loud: torch.Tensor) -> torch.Tensor:
    """``(frames, classes)`` log-probabilities that spell ``text`` from the first loud frame on, as far as the
    frames go: each letter in one frame (probability 0.9), a blank between letters and everywhere else."""
    log_probs = torch.full((len(loud), NUM_CLASSES), math.log(0.1 / (NUM_CLASSES - 1)))
    log_probs[:, 0] = math.log(0.9)
    if loud.any():
        first = int(torch.nonzero(loud)[0])
        for i, symbol in enumerate(encode(text)):
            frame = first + 2 * i
            if frame >= len(loud):
                break
            log_probs[frame] = math.log(0.1 / (NUM_CLASSES - 1))
            log_probs[frame, symbol] = math.log(0.9)
    return log_probs


@dataclass
class FakeRecogniser:
    text: str = "open the garage door please"
    decoding: Decoding = Beam()
    model_id: str = "fake"
    created: int = 1_700_000_000
    sample_rate: int = 16000
    hold: bool = False
    """While set, reads wait (until :meth:`release`, or until they are cancelled)."""

    def __post_init__(self) -> None:
        self.waiting = 0
        self.reads = 0
        """Reads that ran to the end."""
        self.cancelled = 0
        self.closed = False
        self._released: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queue_depth(self) -> int:
        return self.waiting

    @property
    def partial_backlog(self) -> int:
        return 0

    def release(self) -> None:
        """Let held reads go on; callable from any thread."""
        self.hold = False
        if self._released is not None:
            self._loop.call_soon_threadsafe(self._released.set)

    async def _read(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.closed:
            raise Stopped("the service is shutting down")
        self.waiting += 1
        try:
            if self.hold:
                if self._released is None:
                    self._released, self._loop = asyncio.Event(), asyncio.get_running_loop()
                await self._released.wait()
                if self.closed:
                    raise Stopped("the service stopped before this audio was recognised")
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.waiting -= 1
        frames = max(1, math.ceil(waveform.numel() / (FRAME_SECONDS * self.sample_rate)))
        padded = torch.nn.functional.pad(
            waveform, (0, frames * round(FRAME_SECONDS * self.sample_rate) - len(waveform))
        )
        loud = padded.view(frames, -1).square().mean(dim=1) > LOUD
        self.reads += 1
        return spelling(self.text, loud)

    async def log_probs(self, waveform: torch.Tensor) -> torch.Tensor:
        return await self._read(waveform)

    async def read_partial(self, read: StreamRead) -> tuple[torch.Tensor, Settled]:
        log_probs = await self._read(read.audio)
        return log_probs, Settled()

    async def decode(self, log_probs: torch.Tensor, duration: float, decoding: Decoding) -> list[Transcript]:
        best = greedy_decode(log_probs, FRAME_SECONDS, duration)
        if isinstance(decoding, Greedy) or decoding.alternatives <= 1:
            return [best]
        share = 1 / decoding.alternatives
        return [replace(best, confidence=share)] * decoding.alternatives

    def close(self) -> None:
        """Held reads fail as the engine's queued clips do: with Stopped."""
        self.closed = True
        if self._released is not None:
            self._loop.call_soon_threadsafe(self._released.set)

"""What the routes need of the model, as one typed interface: :class:`service.engine.Engine` implements it.

Request options, file recognition and the Vosk session depend on this protocol rather than on the engine,
so that they can be driven, in tests, by a recogniser that needs no model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from asr.incremental import Settled
from asr.transcriber import Decoding
from asr.transcript import Transcript


@dataclass(frozen=True)
class StreamRead:
    """A partial read of a stream's open utterance, which the engine batches with others."""

    audio: torch.Tensor
    """The utterance so far, mono at the model's rate."""
    settled: Settled
    """What the previous partial reads of this utterance settled."""


class Recogniser(Protocol):
    model_id: str
    created: int
    """Unix time the model was written."""
    sample_rate: int
    """The rate of the mono waveforms it reads."""
    decoding: Decoding
    """How requests that ask for nothing else are decoded."""

    @property
    def queue_depth(self) -> int:
        """Clips waiting to be read: how far behind the model is."""
        ...

    @property
    def partial_backlog(self) -> int:
        """Partial reads of open utterances waiting for the model."""
        ...

    async def log_probs(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(frames, classes)`` log-probabilities of one mono clip at :attr:`sample_rate`."""
        ...

    async def read_partial(self, read: StreamRead) -> tuple[torch.Tensor, Settled]:
        """The log-probabilities of an open utterance, read incrementally: see :mod:`asr.incremental`."""
        ...

    async def decode(self, log_probs: torch.Tensor, duration: float, decoding: Decoding) -> list[Transcript]:
        """The best transcript, then any alternatives that ``decoding`` asks for."""
        ...

    def close(self) -> None:
        """Finish the batch in progress; what is still queued fails with :class:`service.batching.Stopped`."""
        ...


async def transcribe(recogniser: Recogniser, waveform: torch.Tensor, decoding: Decoding) -> list[Transcript]:
    """One mono clip at the recogniser's rate, read and decoded: its best transcript, then any alternatives."""
    log_probs = await recogniser.log_probs(waveform)
    return await recogniser.decode(log_probs, waveform.numel() / recogniser.sample_rate, decoding)

"""The loaded model behind every recognition route: a transcriber, the batcher that feeds it, and decoding.

The batcher's worker runs only the acoustic model; each request's log-probabilities are decoded
with its own options on a thread of their own, so the beam searches of one batch overlap the model's
work on the next (PyTorch's kernels run without the GIL; flashlight's decoder holds it, which is
why one decoding thread is as fast as several).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from asr.beam import BeamOptions
from asr.decoding import Transcript
from asr.incremental import Settled
from asr.transcriber import Transcriber
from service.batching import Batcher, Stopped
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("service")


@dataclass(frozen=True)
class StreamRead:
    """A partial read of a stream's open utterance, which the worker batches with others."""

    audio: torch.Tensor
    """The utterance so far, mono at the model's rate."""
    settled: Settled
    """What the previous partial reads of this utterance settled."""


class Engine:
    def __init__(self, transcriber: Transcriber, settings: Settings, metrics: Metrics):
        self.transcriber = transcriber
        self.sample_rate = transcriber.info.feature_config.sample_rate
        frames = settings.stream_window_seconds / transcriber.frame_seconds
        self.stream_window = round(frames) if frames > 0 else None
        self.options = settings.beam_options if transcriber.decoder is not None else None
        """How requests that ask for nothing else are decoded: the server's beam, or greedy without an LM."""
        self.batcher = Batcher(self._recognise, self.sample_rate, settings.batch_limits, metrics.observe_batch)
        self._decoding = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="decode")
        self._closed = False
        metrics.watch_queue(lambda: self.batcher.queue_depth, lambda: self.batcher.audio_in_flight_seconds)

    @classmethod
    def load(cls, settings: Settings, metrics: Metrics) -> Engine:
        """Load the checkpoint and LM and decode one warm-up batch, so the first request pays no start-up cost."""
        transcriber = Transcriber.from_checkpoint(settings.checkpoint, settings.device, settings.precision, settings.lm)
        rate = transcriber.info.feature_config.sample_rate
        transcriber.transcribe([(torch.zeros(rate), rate)] * 2)
        log.info(
            "loaded %s (%d parameters) on %s, %s; %s",
            settings.checkpoint,
            transcriber.num_parameters,
            transcriber.device,
            transcriber.precision,
            f"beam search with {settings.lm}" if settings.lm else "greedy decoding (no LM)",
        )
        return cls(transcriber, settings, metrics)

    async def transcribe(self, waveform: torch.Tensor, options: BeamOptions | None) -> list[Transcript]:
        """Recognise one mono clip at the model's rate: its best transcript, then any alternatives."""
        log_probs = await self.batcher.transcribe(waveform)
        return await self.decode(log_probs, waveform.numel() / self.sample_rate, options)

    async def decode(self, log_probs: torch.Tensor, duration: float, options: BeamOptions | None) -> list[Transcript]:
        """Greedy decoding (``options=None``) takes microseconds, so it runs here; a beam search, on the pool."""
        if options is None:
            return self.transcriber.decode(log_probs, duration, None)
        if self._closed:
            raise Stopped("the service stopped before this audio was decoded")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._decoding, self.transcriber.decode, log_probs, duration, options)

    @property
    def model_id(self) -> str:
        return self.transcriber.name

    async def read_partial(self, read: StreamRead, options: BeamOptions | None) -> tuple[Transcript, Settled]:
        """Read an open utterance incrementally, batched with the other streams' reads and with file clips."""
        step = self.transcriber.model.config.stride * self.transcriber.info.feature_config.hop_length
        unsettled = max(0, read.audio.numel() - read.settled.frames * step)
        log_probs, settled = await self.batcher.submit(read, unsettled)
        [transcript] = await self.decode(log_probs, read.audio.numel() / self.sample_rate, options)
        return transcript, settled

    def _recognise(self, items: list[torch.Tensor | StreamRead]) -> list:
        """Clips and stream reads of one batch, each kind in one forward pass: log-probabilities in the items' order."""
        results: dict[int, object] = {}
        clips = [i for i, item in enumerate(items) if isinstance(item, torch.Tensor)]
        if clips:
            log_probs = self.transcriber.log_probs([(items[i], self.sample_rate) for i in clips])
            results.update(zip(clips, log_probs, strict=True))
        reads = [i for i, item in enumerate(items) if isinstance(item, StreamRead)]
        if reads:
            audio, settled = [items[i].audio for i in reads], [items[i].settled for i in reads]
            log_probs, settled = self.transcriber.advance(audio, settled, self.stream_window)
            results.update(zip(reads, zip(log_probs, settled, strict=True), strict=True))
        return [results[i] for i in range(len(items))]

    def close(self) -> None:
        self._closed = True
        self.batcher.close()
        self._decoding.shutdown(wait=True)

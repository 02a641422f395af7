"""The loaded model behind every recognition route: a transcriber and the batcher that feeds it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from asr.decoding import Transcript
from asr.incremental import Settled
from asr.transcriber import Transcriber
from service.batching import Batcher
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
        self.batcher = Batcher(self._recognise, self.sample_rate, settings.batch_limits, metrics.observe_batch)
        metrics.watch_queue(lambda: self.batcher.queue_depth, lambda: self.batcher.audio_in_flight_seconds)

    @classmethod
    def load(cls, settings: Settings, metrics: Metrics) -> Engine:
        """Load the checkpoint and run one warm-up batch, so the first request pays no start-up cost."""
        transcriber = Transcriber.from_checkpoint(settings.checkpoint, settings.device, settings.precision)
        rate = transcriber.info.feature_config.sample_rate
        transcriber.transcribe([(torch.zeros(rate), rate)] * 2)
        log.info(
            "loaded %s (%d parameters) on %s, %s",
            settings.checkpoint,
            transcriber.num_parameters,
            transcriber.device,
            transcriber.precision,
        )
        return cls(transcriber, settings, metrics)

    @property
    def model_id(self) -> str:
        return self.transcriber.name

    async def read_partial(self, read: StreamRead) -> tuple[Transcript, Settled]:
        """Read an open utterance incrementally, batched with the other streams' reads and with file clips."""
        step = self.transcriber.model.config.stride * self.transcriber.info.feature_config.hop_length
        unsettled = max(0, read.audio.numel() - read.settled.frames * step)
        return await self.batcher.submit(read, unsettled)

    def _recognise(self, items: list[torch.Tensor | StreamRead]) -> list:
        """Clips and stream reads of one batch, each kind in one forward pass, results in the items' order."""
        results: dict[int, object] = {}
        clips = [i for i, item in enumerate(items) if isinstance(item, torch.Tensor)]
        if clips:
            transcripts = self.transcriber.transcribe([(items[i], self.sample_rate) for i in clips])
            results.update(zip(clips, transcripts, strict=True))
        reads = [i for i, item in enumerate(items) if isinstance(item, StreamRead)]
        if reads:
            audio, settled = [items[i].audio for i in reads], [items[i].settled for i in reads]
            transcripts, settled = self.transcriber.advance(audio, settled, self.stream_window)
            results.update(zip(reads, zip(transcripts, settled, strict=True), strict=True))
        return [results[i] for i in range(len(items))]

    def close(self) -> None:
        self.batcher.close()

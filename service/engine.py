"""The loaded model behind every recognition route, the :class:`service.recogniser.Recogniser` they use.

The batcher's worker runs only the acoustic model; each request's log-probabilities are decoded
with its own options by :mod:`service.decoders` (in worker processes by default), so the beam searches of
one batch overlap the model's work on the next.
"""

from __future__ import annotations

import datetime
import logging

import torch

from asr.decoding import Greedy
from asr.incremental import Settled
from asr.transcriber import Decoding, Transcriber
from asr.transcript import Transcript
from service import decoders
from service.batching import Batcher, BatchLimits, Stopped
from service.decoders import Decoders
from service.metrics import Metrics
from service.recogniser import StreamRead
from service.settings import Settings

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        transcriber: Transcriber,
        decoding: Decoding,
        limits: BatchLimits,
        metrics: Metrics,
        stream_window_seconds: float,
        beam: Decoders | None,
        workers: int,
    ):
        """``decoding``: the server's, for requests that ask for nothing else (greedy where there is no ``beam``
        search). ``stream_window_seconds``: how much of an open utterance a partial read recomputes (0: all of
        it). ``workers``: threads running the model, each on its own batch."""
        self.transcriber = transcriber
        self.model_id = transcriber.name
        created = transcriber.info.provenance.get("created")
        self.created = int(datetime.datetime.fromisoformat(created).timestamp()) if created else 0
        self.sample_rate = transcriber.info.feature_config.sample_rate
        self.beam = beam
        self.decoding = decoding if beam is not None else Greedy()
        frames = stream_window_seconds / transcriber.frame_seconds
        self.stream_window = round(frames) if frames > 0 else None
        self.batcher = Batcher(self._recognise, self.sample_rate, limits, metrics.observe_batch, workers)
        self._closed = False
        metrics.watch_queue(lambda: self.batcher.queue_depth, lambda: self.batcher.audio_in_flight_seconds)

    @classmethod
    def load(cls, settings: Settings, metrics: Metrics) -> Engine:
        """Load the checkpoint, and the LM beside it, and read one warm-up batch, so the first request pays no
        start-up cost."""
        beam = decoders.start(settings.lm, settings.decode_processes) if settings.lm else None
        try:
            transcriber = Transcriber.from_checkpoint(settings.checkpoint, settings.device, settings.precision)
            rate = transcriber.info.feature_config.sample_rate
            transcriber.transcribe([(torch.zeros(rate), rate)] * 2)
            if beam is not None:
                beam.wait_ready()
        except BaseException:
            if beam is not None:
                beam.close()
            raise
        log.info(
            "loaded %s (%d parameters) on %s, %s; %s",
            settings.checkpoint,
            transcriber.num_parameters,
            transcriber.device,
            transcriber.precision,
            f"beam search with {settings.lm} in {settings.decode_processes} decoding processes"
            if settings.lm
            else "greedy decoding (no LM)",
        )
        return cls(
            transcriber,
            settings.decoding,
            settings.batch_limits,
            metrics,
            settings.stream_window_seconds,
            beam,
            settings.inference_workers,
        )

    @property
    def queue_depth(self) -> int:
        return self.batcher.queue_depth

    @property
    def partial_backlog(self) -> int:
        return self.batcher.deferred_depth

    async def log_probs(self, waveform: torch.Tensor) -> torch.Tensor:
        return await self.batcher.result_of(waveform)

    async def decode(self, log_probs: torch.Tensor, duration: float, decoding: Decoding) -> list[Transcript]:
        """Greedy decoding takes microseconds, so it runs here; a beam search, where :mod:`service.decoders` runs
        them."""
        if isinstance(decoding, Greedy):
            return self.transcriber.decode(log_probs, duration, decoding)
        if self.beam is None:
            raise ValueError("beam search needs a language model: this server has none (ASR_LM)")
        if self._closed:
            raise Stopped("the service stopped before this audio was decoded")
        return await self.beam.decode(log_probs, self.transcriber.frame_seconds, duration, decoding)

    async def read_partial(self, read: StreamRead) -> tuple[torch.Tensor, Settled]:
        """Read an open utterance incrementally, batched with the other streams' reads and with file clips."""
        step = self.transcriber.model.config.stride * self.transcriber.info.feature_config.hop_length
        unsettled = max(0, read.audio.numel() - read.settled.frames * step)
        return await self.batcher.submit(read, unsettled, deferrable=True)

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
        if self.beam is not None:
            self.beam.close()

"""The loaded model behind every recognition route: a transcriber and the batcher that feeds it."""

from __future__ import annotations

import logging

import torch

from asr.transcriber import Transcriber
from service.batching import Batcher
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("service")


class Engine:
    def __init__(self, transcriber: Transcriber, settings: Settings, metrics: Metrics):
        self.transcriber = transcriber
        self.sample_rate = transcriber.info.feature_config.sample_rate
        self.batcher = Batcher(self._recognise, self.sample_rate, settings.batch_limits, metrics.observe_batch)
        metrics.watch_queue(lambda: self.batcher.queue_depth, lambda: self.batcher.audio_in_flight_seconds)

    @classmethod
    def load(cls, settings: Settings, metrics: Metrics) -> Engine:
        """Load the checkpoint and run one warm-up batch, so the first request pays no start-up cost."""
        transcriber = Transcriber.from_checkpoint(settings.checkpoint, settings.device)
        rate = transcriber.info.feature_config.sample_rate
        transcriber.transcribe([(torch.zeros(rate), rate)] * 2)
        log.info(
            "loaded %s (%d parameters) on %s",
            settings.checkpoint,
            transcriber.model.num_parameters(),
            transcriber.device,
        )
        return cls(transcriber, settings, metrics)

    @property
    def model_id(self) -> str:
        return self.transcriber.name

    def _recognise(self, waveforms: list[torch.Tensor]):
        return self.transcriber.transcribe([(w, self.sample_rate) for w in waveforms])

    def close(self) -> None:
        self.batcher.close()

"""Prometheus metrics of one app, in a registry of its own so that several apps can share a process."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.batching import BatchStats

_LATENCY = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("asr_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.latency = Histogram(
            "asr_request_seconds", "HTTP request latency by route", ["route"], buckets=_LATENCY, registry=r
        )
        self.batch_size = Histogram(
            "asr_batch_size", "Clips per forward pass", buckets=(1, 2, 4, 8, 16, 32, 64), registry=r
        )
        self.batch_seconds = Histogram("asr_batch_seconds", "Time per forward pass", buckets=_LATENCY, registry=r)
        self.queue_depth = Gauge("asr_queue_depth", "Clips waiting for an inference worker", registry=r)
        self.audio_in_flight = Gauge(
            "asr_audio_in_flight_seconds", "Audio waiting for or in the inference workers, in seconds", registry=r
        )
        self.audio = Counter("asr_audio_seconds", "Audio recognised, in seconds", ["source"], registry=r)
        self.streams = Gauge("asr_streams_in_flight", "Open WebSocket streams", registry=r)
        self.partial_reads = Counter(
            "asr_partial_reads",
            "Partial reads of open utterances: read, or skipped while the model was behind",
            ["outcome"],
            registry=r,
        )
        self.requests_in_flight = Gauge(
            "asr_requests_in_flight", "HTTP requests being answered (probes and metrics aside)", registry=r
        )

    def observe_batch(self, stats: BatchStats) -> None:
        self.batch_size.observe(stats.size)
        self.batch_seconds.observe(stats.run_seconds)

    def watch_queue(self, depth: Callable[[], int], audio_seconds: Callable[[], float]) -> None:
        self.queue_depth.set_function(depth)
        self.audio_in_flight.set_function(audio_seconds)

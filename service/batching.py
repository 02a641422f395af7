"""Dynamic batching: every recognition request of the process shares the inference workers.

Callers on the event loop ``await batcher.result_of(waveform)`` (or ``submit`` another kind of
work, such as a stream's incremental read, with its cost in samples); a free worker thread (the event
loop never runs the model) gathers pending clips until the batch is full,
its padded audio reaches the limit, or the oldest clip has waited ``max_wait_ms``. It then groups
the oldest clip with those closest to it in length, so the GRUs' steps stay full (work that can
wait, a stream's partial read, only after the rest), runs them as one batch and routes each
transcript back to its caller. In fp32 the model's padding invariance
makes a clip's transcript the same whichever batch it lands in; int8 (the CPU default) scales its
activations per batch, so there a clip's text can differ by a letter with its batch-mates.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from service.logs import request_id

log = logging.getLogger(__name__)


class Stopped(RuntimeError):
    """The batcher closed before it recognised this clip: the service is shutting down."""


@dataclass(frozen=True)
class BatchLimits:
    """From ``ASR_MAX_BATCH_*`` and ``ASR_MAX_WAIT_MS`` (their defaults are :class:`service.settings.Settings`')."""

    max_batch_size: int
    max_batch_seconds: float
    """Padded audio per batch: the batch size times its longest clip."""
    max_wait_ms: float
    """How long the oldest clip may wait for company before its batch runs anyway."""


@dataclass(eq=False)
class _Job:
    item: object
    samples: int
    """What the item costs to run, in samples of audio: batches are cut by it."""
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    deferrable: bool = False
    """Provisional work (a partial read), which a batch takes only after the rest."""
    arrived: float = field(default_factory=time.monotonic)
    request_id: str | None = field(default_factory=request_id.get)
    """The caller's, so the worker's log lines name the requests of the batch they are about."""


@dataclass
class BatchStats:
    """What the worker reports after each batch (for metrics)."""

    size: int
    run_seconds: float


class Batcher:
    def __init__(
        self,
        run: Callable[[list], list],
        sample_rate: int,
        limits: BatchLimits,
        on_batch: Callable[[BatchStats], None] = lambda stats: None,
        workers: int = 1,
    ):
        """``run`` turns a list of submitted items into their results, in one forward pass; ``workers`` threads
        call it, each on a batch of its own, so one batch's model work overlaps another's."""
        self.run, self.sample_rate, self.limits, self.on_batch = run, sample_rate, limits, on_batch
        self._pending: list[_Job] = []
        self._running: list[list[_Job]] = [[] for _ in range(workers)]
        """Each worker's batch in progress, by worker: its length never changes, so other threads may read it
        unlocked."""
        self._wake = threading.Condition()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"inference-{i}", daemon=True) for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def deferred_depth(self) -> int:
        """Deferrable items waiting: the partial reads the model has not got to."""
        return sum(job.deferrable for job in self._pending)

    @property
    def audio_in_flight_seconds(self) -> float:
        """Audio waiting or being recognised: how far behind the worker is, in seconds of speech."""
        running = [job for batch in self._running for job in batch]
        return sum(job.samples for job in [*self._pending, *running]) / self.sample_rate

    async def result_of(self, waveform: torch.Tensor) -> object:
        """What ``run`` makes of one mono clip at the batcher's sample rate (in the service: its log-probabilities),
        batched with whatever else is pending."""
        if waveform.ndim != 1 or waveform.numel() == 0:
            raise ValueError(f"expected a non-empty mono waveform, got shape {tuple(waveform.shape)}")
        return await self.submit(waveform, waveform.shape[-1])

    async def submit(self, item: object, samples: int, deferrable: bool = False) -> object:
        """``item``'s result, run with whatever else is pending; ``samples`` is its cost in audio samples.
        ``deferrable`` work joins a batch only where no other work is waiting for the room."""
        loop = asyncio.get_running_loop()
        job = _Job(item, samples, loop.create_future(), loop, deferrable)
        with self._wake:
            if self._closed:
                raise Stopped("the service is shutting down")
            self._pending.append(job)
            self._wake.notify()
        return await job.future

    def close(self) -> None:
        """Finish the batches in progress, fail what is still pending, and stop the workers."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        for thread in self._threads:
            thread.join()

    def _work(self, worker: int) -> None:
        while (batch := self._next_batch()) is not None:
            started = time.perf_counter()
            self._running[worker] = batch
            token = request_id.set(" ".join(dict.fromkeys(job.request_id for job in batch if job.request_id)) or None)
            results = self._run_splitting(batch)
            request_id.reset(token)
            self._running[worker] = []
            for job, result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    _deliver(job, None, result)
                else:
                    _deliver(job, result, None)
            self.on_batch(BatchStats(size=len(batch), run_seconds=time.perf_counter() - started))

    def _run_splitting(self, batch: list[_Job]) -> list[object | Exception]:
        """Each item's result or error. A batch that fails runs again in halves, down to single items, so that
        only the item at fault fails (out of device memory: one too big alone; an exception: the culprit)."""
        try:
            return self.run([job.item for job in batch])
        except torch.OutOfMemoryError as error:
            if len(batch) == 1:
                log.error("out of memory on a single clip of %.1f s", batch[0].samples / self.sample_rate)
                return [error]
            log.warning("out of memory on a batch of %d clips; running it in halves", len(batch))
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception as error:  # a bad item fails its caller, never the worker or its batch-mates
            if len(batch) == 1:
                log.exception("a batch of 1 failed (%.1f s of audio)", batch[0].samples / self.sample_rate)
                return [error]
            log.warning("a batch of %d failed (%s: %s); running it in halves", len(batch), type(error).__name__, error)
        half = len(batch) // 2
        return self._run_splitting(batch[:half]) + self._run_splitting(batch[half:])

    def _next_batch(self) -> list[_Job] | None:
        """Wait for work, then let it gather for up to ``max_wait_ms`` unless a batch is already full."""
        limits = self.limits
        with self._wake:
            while True:
                self._pending = [job for job in self._pending if not job.future.cancelled()]
                if self._closed:
                    for job in self._pending:
                        _deliver(job, None, Stopped("the service stopped before this audio was recognised"))
                    return None
                if self._pending:
                    waited = time.monotonic() - self._pending[0].arrived
                    if len(self._pending) >= limits.max_batch_size or waited * 1000 >= limits.max_wait_ms:
                        order = pick_batch(
                            [job.samples for job in self._pending],
                            limits,
                            self.sample_rate,
                            [job.deferrable for job in self._pending],
                        )
                        chosen, taken = [self._pending[i] for i in order], set(order)
                        self._pending = [job for i, job in enumerate(self._pending) if i not in taken]
                        if self._pending:  # what is left is another worker's to gather
                            self._wake.notify()
                        return chosen
                    self._wake.wait(limits.max_wait_ms / 1000 - waited)
                else:
                    self._wake.wait()


def pick_batch(
    lengths: list[int], limits: BatchLimits, sample_rate: int, deferrable: list[bool] | None = None
) -> list[int]:
    """Indices into ``lengths`` (oldest first) of the next batch, shortest clip first.

    The oldest clip always goes, so nothing starves; the rest are the clips nearest to it in
    length that fit the size and padded-audio limits, the ``deferrable`` ones after all others.
    """
    budget = limits.max_batch_seconds * sample_rate
    deferrable = deferrable or [False] * len(lengths)
    nearest = sorted(range(1, len(lengths)), key=lambda i: (deferrable[i], abs(lengths[i] - lengths[0]), i))
    chosen, longest = [0], lengths[0]
    for i in nearest:
        if len(chosen) == limits.max_batch_size:
            break
        if (len(chosen) + 1) * max(longest, lengths[i]) <= budget:
            chosen.append(i)
            longest = max(longest, lengths[i])
    return sorted(chosen, key=lambda i: lengths[i])


def _deliver(job: _Job, result: object, error: BaseException | None) -> None:
    """Hand a result to the caller's event loop; a loop that has already closed has no one waiting."""
    try:
        job.loop.call_soon_threadsafe(_settle, job.future, result, error)
    except RuntimeError:
        log.warning("dropped a result: its event loop is closed")


def _settle(future: asyncio.Future, result: object, error: BaseException | None) -> None:
    if future.done():  # the caller gave up (a closed connection cancels its request)
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)

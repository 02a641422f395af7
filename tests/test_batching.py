"""The dynamic batcher with the bundled model: batching changes nothing but throughput."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from asr.audio import decode
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.features import prepare_waveform
from asr.transcriber import Transcriber
from service.batching import Batcher, BatchStats, Stopped, pick_batch
from service.metrics import Metrics
from service.routers.stream import _partial_gate
from service.settings import Settings
from tests.support.speech import speak

LIMITS = Settings().batch_limits
SENTENCES = [
    "turn off the kitchen lights",
    "what time is it",
    "call alice on monday morning",
    "play some music",
    "set a timer for twenty minutes",
    "open the garage door please",
]


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber.from_checkpoint(DEFAULT_CHECKPOINT, "cpu", "fp32")


@pytest.fixture(scope="module")
def clips() -> list[torch.Tensor]:
    return [prepare_waveform(*decode(speak(text, rate=130 + 15 * i))) for i, text in enumerate(SENTENCES)]


def test_pick_batch_takes_the_oldest_and_its_nearest_lengths():
    limits = replace(LIMITS, max_batch_size=3, max_batch_seconds=1000)
    assert pick_batch([50, 10, 49, 90, 52, 51], limits, sample_rate=1) == [2, 0, 5]


def test_pick_batch_takes_deferrable_work_after_the_rest_but_never_starves_it():
    """A stream's final read must not queue behind the partial reads of 32 other streams."""
    limits = replace(LIMITS, max_batch_size=3, max_batch_seconds=1000)
    lengths, partial = [50, 50, 50, 50, 90, 10], [False, True, True, True, False, False]
    assert pick_batch(lengths, limits, 1, partial) == [5, 0, 4]
    assert pick_batch(lengths, limits, 1, [True] * 6) == [0, 1, 2]  # the oldest goes, partial or not
    assert pick_batch(lengths, limits, 1, [True, *partial[1:]]) == [5, 0, 4]


def test_pick_batch_keeps_padded_audio_under_the_limit():
    limits = replace(LIMITS, max_batch_size=16, max_batch_seconds=100)
    # 30 + 30 + 31 fits (3 x 31 = 93); a fourth at 31 would pad to 124.
    assert pick_batch([30, 30, 31, 31, 5], limits, sample_rate=1) == [0, 1, 2]
    # The oldest goes even when it alone is over the limit, so that nothing waits forever.
    assert pick_batch([500, 1, 2], limits, sample_rate=1) == [0]


def test_a_clip_reads_the_same_alone_and_in_any_batch(transcriber, clips):
    alone = [transcriber.transcribe([(clip, 16000)])[0] for clip in clips]
    sizes: list[int] = []

    async def together():
        batcher = Batcher(
            lambda ws: transcriber.transcribe([(w, 16000) for w in ws]),
            16000,
            replace(LIMITS, max_batch_size=4, max_wait_ms=200),
            lambda stats: sizes.append(stats.size),
        )
        try:
            return await asyncio.gather(*(batcher.result_of(clip) for clip in clips))
        finally:
            batcher.close()

    batched = asyncio.run(together())
    assert sorted(sizes, reverse=True) == [4, 2]
    assert [t.text for t in batched] == [t.text for t in alone]
    timings = [[(w.word, w.start, w.end) for w in t.words] for t in alone]
    assert [[(w.word, w.start, w.end) for w in t.words] for t in batched] == timings
    # Confidences come from batched matrix products, which round differently in the last bits.
    confidences = [w.confidence for t in alone for w in t.words]
    assert [w.confidence for t in batched for w in t.words] == pytest.approx(confidences, rel=1e-5)


def failing_on_negative_clips(calls: list[int]) -> Callable[[list[torch.Tensor]], list[str]]:
    """A model that fails any batch holding a clip of negative samples, and counts the batches it runs."""

    def run(waveforms):
        calls.append(len(waveforms))
        if any(w[0] < 0 for w in waveforms):
            raise RuntimeError("injected failure")
        return [f"{w.numel()} samples" for w in waveforms]

    return run


def test_a_failing_batch_fails_only_its_callers_and_the_worker_goes_on():
    calls: list[int] = []

    async def scenario():
        batcher = Batcher(failing_on_negative_clips(calls), 16000, replace(LIMITS, max_wait_ms=0))
        try:
            with pytest.raises(RuntimeError, match="injected failure"):
                await batcher.result_of(-torch.ones(10))
            return await batcher.result_of(torch.ones(20))
        finally:
            batcher.close()

    assert asyncio.run(scenario()) == "20 samples"
    assert calls == [1, 1]


def test_a_batch_that_fails_runs_again_without_the_culprit_so_only_the_culprit_fails():
    """A clip that broke the int8 model failed every request batched with it, and closed their streams."""
    calls: list[int] = []

    async def scenario():
        batcher = Batcher(failing_on_negative_clips(calls), 16000, replace(LIMITS, max_wait_ms=50))
        try:
            clips = [torch.ones(10), torch.ones(11), -torch.ones(12), torch.ones(13), torch.ones(14)]
            return await asyncio.gather(*(batcher.result_of(c) for c in clips), return_exceptions=True)
        finally:
            batcher.close()

    results = asyncio.run(scenario())
    assert results[:2] + results[3:] == ["10 samples", "11 samples", "13 samples", "14 samples"]
    assert isinstance(results[2], RuntimeError)
    assert calls[0] == 5 and len(calls) <= 1 + 2 + 2 + 2  # halves down to the culprit alone


async def queued(batcher: Batcher, depth: int) -> None:
    """Until ``depth`` requests wait in the queue: each request's task enqueues itself when it first runs."""
    while batcher.queue_depth != depth:
        await asyncio.sleep(0)


def test_a_cancelled_request_is_never_run():
    seen: list[int] = []
    stats: list[BatchStats] = []

    def run(waveforms):
        seen.extend(w.numel() for w in waveforms)
        return ["ok"] * len(waveforms)

    async def scenario():
        batcher = Batcher(run, 16000, replace(LIMITS, max_wait_ms=300), stats.append)
        try:
            gone = asyncio.ensure_future(batcher.result_of(torch.ones(111)))
            await queued(batcher, 1)
            gone.cancel()
            return await batcher.result_of(torch.ones(222))
        finally:
            batcher.close()

    assert asyncio.run(scenario()) == "ok"
    assert seen == [222] and [s.size for s in stats] == [1]


def test_pending_requests_fail_cleanly_when_the_batcher_closes():
    async def scenario():
        batcher = Batcher(lambda ws: ["ok"] * len(ws), 16000, replace(LIMITS, max_wait_ms=10_000, max_batch_size=8))
        waiting = asyncio.ensure_future(batcher.result_of(torch.ones(5)))
        await queued(batcher, 1)
        await asyncio.to_thread(batcher.close)
        with pytest.raises(Stopped, match="the service stopped before this audio was recognised"):
            await waiting
        with pytest.raises(Stopped, match="shutting down"):
            await batcher.result_of(torch.ones(5))

    asyncio.run(scenario())


def test_audio_in_flight_counts_the_running_batch_and_the_queue():
    started, release = threading.Event(), threading.Event()

    def run(waveforms):
        started.set()
        release.wait(5)
        return ["ok"] * len(waveforms)

    async def scenario():
        batcher = Batcher(run, 16000, replace(LIMITS, max_wait_ms=0, max_batch_size=1))
        try:
            assert batcher.audio_in_flight_seconds == 0
            running = asyncio.ensure_future(batcher.result_of(torch.ones(32000)))
            await asyncio.to_thread(started.wait, 5)
            waiting = asyncio.ensure_future(batcher.result_of(torch.ones(8000)))
            await queued(batcher, 1)
            seen = batcher.audio_in_flight_seconds, batcher.queue_depth
            release.set()
            await asyncio.gather(running, waiting)
            return seen, batcher.audio_in_flight_seconds
        finally:
            release.set()
            batcher.close()

    (during, depth), after = asyncio.run(scenario())
    assert during == 2.5 and depth == 1
    assert after == 0


def test_two_workers_run_two_batches_at_once_and_both_count_in_flight():
    """Each worker takes a batch of its own; a run that waits for a second batch to start would time out with one."""
    both_running, release = threading.Barrier(3), threading.Event()

    def run(waveforms):
        both_running.wait(5)
        release.wait(5)
        return [f"{w.numel()} samples" for w in waveforms]

    async def scenario():
        batcher = Batcher(run, 16000, replace(LIMITS, max_wait_ms=0, max_batch_size=1), workers=2)
        try:
            first = asyncio.ensure_future(batcher.result_of(torch.ones(16000)))
            second = asyncio.ensure_future(batcher.result_of(torch.ones(8000)))
            await asyncio.to_thread(both_running.wait, 5)
            during = batcher.audio_in_flight_seconds, batcher.queue_depth
            release.set()
            return during, await asyncio.gather(first, second)
        finally:
            release.set()
            await asyncio.to_thread(batcher.close)

    (seconds, depth), texts = asyncio.run(scenario())
    assert seconds == 1.5 and depth == 0
    assert texts == ["16000 samples", "8000 samples"]


def test_waiting_partial_reads_are_counted_apart_and_gate_new_ones():
    """The stream route reads a partial only while fewer than a batch of them wait; each decision is counted."""
    release = threading.Event()

    def run(items):
        release.wait(5)
        return ["ok"] * len(items)

    async def scenario():
        batcher = Batcher(run, 16000, replace(LIMITS, max_wait_ms=0, max_batch_size=2))
        engine = SimpleNamespace(partial_backlog=0, queue_depth=0)
        metrics = Metrics()
        gate = _partial_gate(engine, Settings(max_batch_size=2), metrics)
        try:
            jobs = [asyncio.ensure_future(batcher.submit("read", 100, deferrable=True)) for _ in range(4)]
            jobs.append(asyncio.ensure_future(batcher.submit("final", 100)))
            while batcher.queue_depth + sum(map(len, batcher._running)) < 5:
                await asyncio.sleep(0.01)
            engine.partial_backlog, engine.queue_depth = batcher.deferred_depth, batcher.queue_depth
            decisions = [gate(), gate()]
            engine.partial_backlog = 1
            decisions.append(gate())
            release.set()
            await asyncio.gather(*jobs)
            return decisions, metrics
        finally:
            release.set()
            batcher.close()

    decisions, metrics = asyncio.run(scenario())
    assert decisions == [False, False, True]
    counted = metrics.partial_reads.labels("skipped")._value.get(), metrics.partial_reads.labels("read")._value.get()
    assert counted == (2, 1)


def test_out_of_memory_splits_the_batch_until_it_fits_and_fails_only_a_clip_too_big_alone():
    calls: list[list[int]] = []

    def run(waveforms):
        calls.append([w.numel() for w in waveforms])
        if len(waveforms) > 2 or any(w.numel() > 1000 for w in waveforms):
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return [f"{w.numel()} samples" for w in waveforms]

    async def scenario():
        batcher = Batcher(run, 16000, replace(LIMITS, max_wait_ms=200))
        try:
            jobs = [batcher.result_of(torch.ones(n)) for n in (10, 20, 30, 40, 2000)]
            return await asyncio.gather(*jobs, return_exceptions=True)
        finally:
            batcher.close()

    *fitted, too_big = asyncio.run(scenario())
    assert fitted == ["10 samples", "20 samples", "30 samples", "40 samples"]
    assert isinstance(too_big, torch.OutOfMemoryError)
    assert calls[0] == [10, 20, 30, 40, 2000]  # one batch first, shortest first
    assert [10, 20] in calls and [30] in calls and [40] in calls and calls[-1] == [2000]

"""The performance suite's own arithmetic, and the peer recogniser it compares against."""

from __future__ import annotations

import time

from bench.peer import pocketsphinx_throughput
from bench.suite import batch_distribution, targets
from tests.support.speech import speech


def test_batch_sizes_come_from_the_difference_of_two_histogram_readings():
    buckets = ["1.0", "2.0", "4.0", "8.0", "16.0", "32.0", "64.0", "+Inf"]
    before = dict(zip(buckets, [2, 2, 2, 3, 3, 3, 3, 3], strict=True))
    after = dict(zip(buckets, [5, 7, 7, 13, 33, 33, 33, 34], strict=True))
    assert batch_distribution(before, after) == {"1": 3, "2": 2, "5-8": 5, "9-16": 20, "65-": 1}


def test_each_target_is_judged_in_its_direction_and_a_tie_meets_it():
    result = {
        "files": [{"clients": 32, "audio_s_per_s": 100.0, "server_peak_rss_mb": 2100}],
        "batching_off": {"audio_s_per_s": 50.0},
        "pocketsphinx": {"audio_s_per_s": 20.0},
        "streams": [{"streams": 32, "partial_ms_p95": 500.0, "final_ms_p95": 701.0}],
        "roofline": {"share_of_gemm_peak": 0.39},
        "startup": {"ready_s": 3.0, "idle_rss_mb": 600},
    }
    met = {row["target"]: row["met"] for row in targets(result)}
    assert met == {
        "file throughput at 32 clients, audio s/s": True,
        "batching on / off at 32 clients": True,
        "ours / PocketSphinx throughput": False,
        "32 streams: partial p95, ms": True,
        "32 streams: final p95, ms": False,
        "share of GEMM peak at 32 clients": False,
        "seconds to ready": True,
        "idle resident memory, MB": True,
        "resident memory under 32 clients, MB": False,
    }


def test_pocketsphinx_decodes_every_clip_in_order_with_its_bundled_model():
    clips = [speech("open the garage door please"), speech("read me the latest news")]
    started = time.perf_counter()
    result = pocketsphinx_throughput([clips[0], clips[1], clips[0]], processes=2)
    elapsed = time.perf_counter() - started
    assert result["audio_seconds"] == (2 * clips[0].numel() + clips[1].numel()) / 16000
    assert result["audio_seconds"] / elapsed <= result["audio_s_per_s"] < float("inf")  # timed within the call
    first, second, third = result["transcripts"]
    assert first and second and first != second and first == third

"""The performance suite's own arithmetic, and the peer recogniser it compares against."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from asr.text import normalise
from bench.peer import pocketsphinx_throughput, whisper_throughput
from bench.profile import summarise
from bench.suite import (
    DOCS_BEGIN,
    DOCS_END,
    HEADLINE_BEGIN,
    HEADLINE_END,
    batch_distribution,
    cpu_name,
    defaults,
    targets,
    write_docs,
)
from tests.support.speech import speech

DOCS = Path(__file__).parents[1] / "docs" / "performance.md"


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
        "streams": [
            {"streams": 32, "partial_ms_p95": 500.0, "final_ms_p95": 1001.0},
            {"streams": 64, "lag_s_max": 0.5},
        ],
        "roofline": {"share_of_gemm_peak": 0.29},
        "startup": {"ready_s": 3.0, "idle_rss_mb": 600},
    }
    met = {row["target"]: row["met"] for row in targets(result)}
    assert met == {
        "file throughput at 32 clients, audio s/s": True,
        "batching on / off at 32 clients": True,
        "ours / PocketSphinx throughput": False,
        "32 streams: partial p95, ms": True,
        "32 streams: final p95, ms": False,
        "64 streams: lag behind real time, s": True,
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


def test_whisper_reads_each_clip_in_order():
    clips = [speech("open the garage door please"), speech("read me the latest news")]
    result = whisper_throughput(clips, threads=2)
    assert result["audio_seconds"] == sum(c.numel() for c in clips) / 16000 and result["audio_s_per_s"] > 0
    assert [normalise(t) for t in result["transcripts"]] == ["open the garage door please", "read me the latest news"]


def _result() -> dict:
    file_row = {"clients": 32, "audio_s_per_s": 81.5, "server_cpu_percent": 190, "server_peak_rss_mb": 1500}
    file_row |= {f"latency_ms_p{q}": 1000.0 * q for q in (50, 95, 99)} | {"wer": 0.1}
    stream_row = {
        "streams": 32,
        "lag_s_max": 0.2,
        "partial_reads_skipped_percent": 12.5,
        "audio_in_flight_s_mean": 1.5,
        "audio_in_flight_s_max": 4.0,
    }
    stream_row |= {f"{k}_ms_p{q}": 10.0 * q for k in ("partial", "final") for q in (50, 95, 99)} | {"wer": 0.12}
    result = {
        "cores": 2,
        "cpu": "AMD EPYC 9R14 with AVX-512",
        "defaults": {"decode_processes": 1},
        "files": [file_row],
        "streams": [stream_row],
        "batching_off": {"audio_s_per_s": 40.0, "wer": 0.1},
        "pocketsphinx": {"audio_s_per_s": 8.15, "processes": 2, "wer": 0.3},
        "whisper": {"audio_s_per_s": 16.3, "threads": 2, "wer": 0.04},
        "roofline": {"model_gflop_per_audio_s": 0.6, "achieved_gflop_per_s": 49, "gemm_peak_gflop_per_s": 190},
        "startup": {"ready_s": 3.1, "idle_rss_mb": 700},
    }
    result["roofline"]["share_of_gemm_peak"] = 0.258
    return result | {"targets": [{"target": "t", "measured": 1, "goal": ">= 2", "met": False}]}


def test_the_docs_block_is_replaced_with_the_run_s_figures_and_the_rest_kept(tmp_path):
    page = tmp_path / "performance.md"
    page.write_text(f"# title\n\n{DOCS_BEGIN}\nold figures\n{DOCS_END}\n\n{HEADLINE_BEGIN}\nold\n{HEADLINE_END}\n")
    write_docs(page, _result())
    text = page.read_text()
    assert text.startswith("# title\n\n" + DOCS_BEGIN) and text.endswith(HEADLINE_END + "\n")
    assert "old figures" not in text and "| t | 1 | >= 2 | **missed** |" in text
    assert "| Whisper tiny.en (faster-whisper, int8, 2 threads) | 16.3 | **5.00x** | 4.0% |" in text
    assert "| PocketSphinx 5.1.1, 2 processes | 8.15 | **10.00x** | 30.0% |" in text
    assert "**25.8% of peak**" in text and "On 2 cores of an AMD EPYC 9R14 with AVX-512.\n" in text
    assert "32 concurrent file clients get 81.5 audio s/s (2.04x the same server with batching off, 10.0x" in text
    (tmp_path / "plain.md").write_text("no block")
    with pytest.raises(SystemExit, match="no <!-- bench.suite: begin --> or"):
        write_docs(tmp_path / "plain.md", _result())


def test_the_cpu_is_named_with_its_widest_matrix_instructions():
    xeon = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)   Processor\nflags\t\t: fpu avx2 avx512f amx_int8\n"
    assert cpu_name(xeon + xeon.replace(": 0", ": 1")) == "Intel(R) Xeon(R) Processor with AMX"
    assert cpu_name("model name\t: AMD EPYC 7R13\nflags\t\t: fpu avx2\n") == "AMD EPYC 7R13 with AVX2"
    assert cpu_name("") == "unknown CPU"


def test_the_docs_figures_were_measured_with_today_s_defaults():
    """A default that the suite depends on changed without the suite's figures being measured again."""
    [line] = [line for line in DOCS.read_text().splitlines() if line.startswith("Measured with these defaults: ")]
    measured = json.loads(line.removeprefix("Measured with these defaults: ").rstrip("."))
    assert measured == defaults(), "run python -m bench.suite --docs docs/performance.md"


def test_the_profile_is_summed_by_process_thread_frame_and_project_caller(tmp_path):
    server = 'process 7:"python -m service";thread (8): inference'
    worker = 'process 7:"python -m service";process 9:"python -c x; main(1)";thread (9): MainThread'
    raw = tmp_path / "stacks.txt"
    raw.write_text(
        f"{server};forward (asr/model.py:10);gru (torch/nn/rnn.py:5) 6\n"
        f"{server};forward (asr/model.py:10) 2\n"
        f"{worker};hypotheses (asr/beam.py:3);decode (flashlight/x.py:1) 2\n"
    )
    lines = summarise(raw, 2).splitlines()
    assert "process 7 (server), thread inference: 80.0% of samples" in lines
    assert "   60.0%  at gru (nn/rnn.py)" in lines and "   80.0%  in forward (asr/model.py)" in lines
    assert "process 9 (its child), thread MainThread: 20.0% of samples" in lines
    assert "   20.0%  in hypotheses (asr/beam.py)" in lines

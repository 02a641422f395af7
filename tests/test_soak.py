"""The soak test, briefly: 12 s of mixed load on a real server (``bench/soak.py`` runs it for longer),
and the heap trimming that keeps the server's memory from creeping up under it."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.soak import run

FRAGMENTED_HEAP = """
import asyncio, os, sys, time, torch

from service.memory import trim_forever
from tests.support.servers import resident_mb

chunks = [torch.ones(16384) for _ in range(4000)]  # 4,000 blocks of 64 KiB: from the heap, not mmap
kept = chunks[::10]  # every tenth stays, so the heap's top cannot simply shrink
del chunks
freed = resident_mb(os.getpid())
if sys.argv[1] == "wait":
    time.sleep(0.3)
else:
    async def trim_briefly():
        task = asyncio.create_task(trim_forever(every=0.05))
        await asyncio.sleep(0.3)
        task.cancel()
    asyncio.run(trim_briefly())
print(freed - resident_mb(os.getpid()))
"""


def returned_mb(how: str) -> float:
    """What a process gets back to the OS of 225 MB freed amid blocks still in use, by ``how``."""
    result = subprocess.run(
        [sys.executable, "-c", FRAGMENTED_HEAP, how],
        capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1],
    )  # fmt: skip
    return float(result.stdout)


def test_trimming_gives_the_heap_free_pages_back_that_glibc_keeps_by_itself():
    assert returned_mb("wait") < 20
    assert returned_mb("trim") > 180


def test_twelve_seconds_of_mixed_load_lose_nothing_shed_the_excess_and_leave_nothing_stuck(tmp_path):
    # Limits low enough that the server must refuse some of this load, and must do it rightly.
    report = run(12, {"files": 3, "streams": 3, "bad": 2, "quitters": 1}, tmp_path / "log", max_queue=3, max_streams=4)
    shed = Counter()
    for kind in ("files", "streams", "bad", "quitters"):
        assert report[kind]["failed"] == 0, report[kind]["failures"]
        assert report[kind]["sent"] > 0
        shed.update(report[kind]["rejected_rightly"])
    assert shed[503] > 0 and shed[1013] > 0
    assert report["files"]["succeeded"] > 20 and report["streams"]["succeeded"] > 5  # 95 and 15 on 2 EPYC cores
    assert sum(report["bad"]["rejected_rightly"].values()) == report["bad"]["sent"]
    assert report["stuck"] == {"streams": 0, "queued_s": 0}
    assert report["server_errors_logged"] == 0
    # Without heap trimming the server grew by 191 MB in these 12 s; with it, by 67 MB.
    assert report["rss_mb_end"] - report["rss_mb_start"] < 130

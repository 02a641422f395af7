"""Fixtures shared by the test modules; their helpers live in ``tests/support``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from asr.audio import decode
from tests.support.servers import serve
from tests.support.speech import speak

if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    # Each worker gets its share of the cores: two workers spinning two threads each on two cores made the
    # training tests five times slower (158 s against 30).
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture
def speech() -> tuple[torch.Tensor, int]:
    return decode(speak("set a timer for twenty minutes"))


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """``python -m service`` on a loopback port, serving the bundled model; yields its URL and log file.

    In fp32, so that tests may compare its transcripts with one-clip reads: int8's activation
    scales follow the batch, so under int8 a clip's text can depend on its batch-mates.
    """
    log = tmp_path_factory.mktemp("server") / "server.log"
    with serve(log, device="cpu", precision="fp32") as (url, process):
        yield url, log
        process.terminate()
        assert process.wait(timeout=20) == 0  # the drain (service.shutdown) ends a SIGTERM with exit 0
    assert "Application shutdown complete" in log.read_text(), log.read_text()

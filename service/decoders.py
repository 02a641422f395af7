"""Where the service's beam searches run: in worker processes, or on one thread of the server's own.

flashlight's decoder holds the GIL for a whole search, so in the server's process every search queues
behind the others and takes the interpreter from the event loop and the batcher. In a worker process
it runs beside them on its own core. Workers start, and load the LM, while the server loads its model;
a worker that dies (killed, out of memory) is replaced and its search run again.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Protocol

import torch

from asr.beam import Beam, BeamDecoder
from asr.language_model import LanguageModel
from asr.transcript import Transcript

log = logging.getLogger(__name__)


class Decoders(Protocol):
    async def decode(
        self, log_probs: torch.Tensor, frame_seconds: float, duration: float, options: Beam
    ) -> list[Transcript]:
        """:meth:`asr.beam.BeamDecoder.decode` of one utterance's ``(frames, classes)`` log-probabilities."""
        ...

    def wait_ready(self) -> None:
        """Block until the LM is loaded (raising what stopped it)."""
        ...

    def close(self) -> None:
        """Finish the searches in progress and stop."""
        ...


class DecoderThread:
    """Searches on one thread of this process: more would only queue for the GIL."""

    def __init__(self, lm: Path):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="decode")
        self._decoder: Future[BeamDecoder] = self._pool.submit(lambda: BeamDecoder(LanguageModel.load(lm)))

    async def decode(
        self, log_probs: torch.Tensor, frame_seconds: float, duration: float, options: Beam
    ) -> list[Transcript]:
        search = self._pool.submit(lambda: self._decoder.result().decode(log_probs, frame_seconds, duration, options))
        return await asyncio.wrap_future(search)

    def wait_ready(self) -> None:
        self._decoder.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DecoderProcesses:
    """Searches in ``processes`` worker processes, each with its own copy of the LM."""

    def __init__(self, lm: Path, processes: int):
        self.lm, self.processes = lm, processes
        self._replacing = threading.Lock()
        self._pool, self._ready = self._start()

    def _start(self) -> tuple[ProcessPoolExecutor, list[Future]]:
        # forkserver: forking the server itself would copy its threads' locks mid-use.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["asr.beam"])
        pool = ProcessPoolExecutor(self.processes, context, initializer=_load, initargs=(str(self.lm),))
        return pool, [pool.submit(_loaded) for _ in range(self.processes)]

    async def decode(
        self, log_probs: torch.Tensor, frame_seconds: float, duration: float, options: Beam
    ) -> list[Transcript]:
        pool = self._pool
        try:
            return await self._search(pool, log_probs, frame_seconds, duration, options)
        except BrokenProcessPool:
            log.error("a decoding process died; starting another and searching again")
            with self._replacing:
                if self._pool is pool:  # not yet replaced by another request that met the same death
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool, self._ready = self._start()
            return await self._search(self._pool, log_probs, frame_seconds, duration, options)

    @staticmethod
    async def _search(pool: ProcessPoolExecutor, log_probs: torch.Tensor, *args) -> list[Transcript]:
        return await asyncio.wrap_future(pool.submit(_decode, log_probs.numpy(), *args))

    def wait_ready(self) -> None:
        for loaded in self._ready:
            loaded.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def start(lm: Path, processes: int) -> Decoders:
    """Beam searches with the LM bundle ``lm``: in ``processes`` workers, or 0 for a thread of this process."""
    return DecoderProcesses(lm, processes) if processes else DecoderThread(lm)


_decoder: BeamDecoder | None = None
"""A worker process's decoder."""


def _load(lm: str) -> None:
    global _decoder
    torch.set_num_threads(1)  # the search's tensor work is small; the model's worker has the cores
    _decoder = BeamDecoder(LanguageModel.load(lm))


def _loaded() -> bool:
    return _decoder is not None


def _decode(log_probs, frame_seconds: float, duration: float, options: Beam) -> list[Transcript]:
    return _decoder.decode(torch.from_numpy(log_probs), frame_seconds, duration, options)

"""Getting uploaded audio off the wire and through recognition, with every failure a clear 4xx or 5xx.

The size limit is enforced as the body streams in (:class:`service.body.BodyLimit`); here come
the rest: the longest accepted duration, the request's deadline, and cancelling the work of a
client that has gone away, so its windows leave the batcher's queue.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable
from typing import BinaryIO

import torch
from fastapi import Request

from asr.audio import AudioDecodeError, AudioTooLong
from asr.transcriber import Decoding
from asr.transcript import Transcript, Word
from service.errors import ApiError
from service.limits import FileLimits
from service.metrics import Metrics
from service.recogniser import Recogniser, transcribe
from service.windowing import FileTranscript, Windowing, transcribe_file

log = logging.getLogger(__name__)


async def spool_body(request: Request) -> BinaryIO:
    """The raw request body in a temporary file (in memory while small)."""
    body = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (the caller closes it)
    async for chunk in request.stream():
        body.write(chunk)
    body.seek(0)
    return body


async def recognise(
    request: Request,
    source: BinaryIO,
    name: str,
    recogniser: Recogniser,
    decoding: Decoding,
    windowing: Windowing,
    limits: FileLimits,
    metrics: Metrics,
    on_words: Callable[[list[Word]], None] = lambda words: None,
) -> FileTranscript:
    """Transcribe a whole file, unless it is undecodable (400), too long (413), past its deadline (504), or its
    client disconnects first (the work is cancelled). The first two are raised as the audio's own errors, which
    :mod:`service.errors` answers. ``on_words``: as in :func:`service.windowing.transcribe_file`."""

    async def best(window: torch.Tensor) -> Transcript:
        return (await transcribe(recogniser, window, decoding))[0]

    work = asyncio.ensure_future(
        transcribe_file(source, best, recogniser.sample_rate, windowing, name, limits.max_seconds, on_words)
    )
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({work, gone}, timeout=limits.timeout_seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        work.cancel()  # a no-op once done; otherwise its queued windows are dropped
    if gone.done() and not work.done():
        log.info("%s: the client went away; its transcription is cancelled", name)
        raise ApiError(499, "client_closed_request", "the client closed the connection")
    if not work.done():
        limit = limits.timeout_seconds
        raise ApiError(
            504, "deadline_exceeded", f"{name}: not transcribed within {limit:g} s (ASR_REQUEST_TIMEOUT_SECONDS)"
        )
    try:
        result = work.result()
    except AudioDecodeError as error:
        raise AudioDecodeError(f"{name}: {error}") from None
    except AudioTooLong as error:
        raise AudioTooLong(f"{name}: {error} (ASR_MAX_DURATION_SECONDS)") from None
    metrics.audio.labels("file").inc(result.duration)
    return result


async def _disconnect(request: Request) -> None:
    """Returns when the client disconnects (the body has been read, so nothing else arrives)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass

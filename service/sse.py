"""OpenAI's streamed transcription (``stream=true``): server-sent events as a file's windows finish.

Each window's final words go out as a ``transcript.text.delta`` event, and the whole text as
``transcript.text.done``, so a long file's text starts to arrive after its first window instead of
at its end. The response starts only once the first words are in (or the file is done): a file that
fails before then (undecodable, too long) gets its ordinary 4xx answer; a failure after that, which
HTTP can no longer report in its status, ends the stream with an ``error`` event, the shape OpenAI's
clients raise.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi.responses import StreamingResponse

from asr.transcript import Word
from service.errors import classify, error_body
from service.openai_formats import Usage, logprobs
from service.windowing import FileTranscript

log = logging.getLogger(__name__)


async def transcription_events(
    run: Callable[[Callable[[list[Word]], None]], Awaitable[FileTranscript]], with_logprobs: bool
) -> StreamingResponse:
    """Start ``run``, a file's recognition that reports each window's words to the callable it is given, and
    answer with its events."""
    pending: list[list[Word]] = []
    arrived = asyncio.Event()

    def told(words: list[Word]) -> None:
        pending.append(words)
        arrived.set()

    async def next_words() -> None:
        waiter = asyncio.ensure_future(arrived.wait())
        try:
            await asyncio.wait({waiter, work}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        arrived.clear()

    work = asyncio.ensure_future(run(told))
    try:
        await next_words()
    except BaseException:
        work.cancel()
        raise
    if work.done() and not pending and work.exception() is not None:
        raise work.exception()

    async def events() -> AsyncIterator[str]:
        said = False
        try:
            while True:
                while pending:
                    words = pending.pop(0)
                    yield _event(_delta(words, said, with_logprobs))
                    said = True
                if work.done():
                    break
                await next_words()
            try:
                result = work.result()
            except Exception as error:
                status, code, message, param = classify(error)
                if status >= 500:
                    log.error("a streamed transcription failed: %s", message)
                yield _event({"type": "error", **error_body(status, code, message, param)})
                return
            done = {"type": "transcript.text.done", "text": result.transcript.text}
            if with_logprobs:
                done["logprobs"] = [t.model_dump() for t in logprobs(result.transcript.words)]
            yield _event(done | {"usage": Usage.of(result).model_dump()})
        finally:
            work.cancel()

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _delta(words: list[Word], continuing: bool, with_logprobs: bool) -> dict:
    """A window's words; after the first delta each starts with the space that joins it to the text before."""
    event = {"type": "transcript.text.delta", "delta": (" " if continuing else "") + " ".join(w.word for w in words)}
    if with_logprobs:
        event["logprobs"] = [t.model_dump() for t in logprobs(words, continuing)]
    return event


def _event(data: dict) -> str:
    return f"data: {json.dumps(data)}\n\n"

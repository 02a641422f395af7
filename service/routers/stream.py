"""``WS /v1/stream``, and ``WS /`` where Vosk's clients connect (``ws://host:port``; a browser's ``GET /`` still
gets the page): the Vosk protocol (:mod:`service.vosk`) over a WebSocket.

When the server shuts down, each stream gets its last result, as after eof, and a close with 1001
(going away): reconnect, to another replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from fastapi import APIRouter, WebSocket, status
from starlette.datastructures import State
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect

from service.batching import Stopped
from service.metrics import Metrics
from service.recogniser import Recogniser
from service.settings import Settings
from service.shutdown import Drain
from service.vosk import ErrorReply, ProtocolError, Session, parse_command

log = logging.getLogger(__name__)
router = APIRouter()


async def _receive_unless_draining(websocket: WebSocket, drain: Drain, idle_seconds: float) -> Message | None:
    """The client's next message, or None once the server has begun to shut down."""
    receive = asyncio.ensure_future(websocket.receive())
    draining = asyncio.ensure_future(drain.started.wait())
    try:
        await asyncio.wait({receive, draining}, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        draining.cancel()
        if not receive.done():
            receive.cancel()
    if receive.done():
        return receive.result()
    if draining.done():
        return None
    raise ProtocolError(f"no message for {idle_seconds:g} s (ASR_STREAM_IDLE_SECONDS)", status.WS_1008_POLICY_VIOLATION)


def _partial_gate(recogniser: Recogniser, settings: Settings, metrics: Metrics) -> Callable[[], bool]:
    """Whether a stream may read its open utterance for a partial now: not while a batch's worth of partial
    reads is still waiting for the model. Skipping one repeats the last partial and keeps the backlog, and
    the streams' lag, bounded; finals are always read."""

    def may_read() -> bool:
        allowed = (
            recogniser.partial_backlog < settings.max_batch_size
            and recogniser.queue_depth < settings.stream_limits.max_queue
        )
        metrics.partial_reads.labels("read" if allowed else "skipped").inc()
        return allowed

    return may_read


def _refusal(state: State) -> tuple[str, int] | None:
    """Why a new stream cannot start now, with its close code, if it cannot."""
    if state.recogniser is None:
        return "the model is not loaded yet; GET /ready says when it is", status.WS_1013_TRY_AGAIN_LATER
    if state.drain.draining:
        return "this server is shutting down; connect again", status.WS_1001_GOING_AWAY
    limit = state.settings.stream_limits.max_streams
    if state.open_streams >= limit:
        message = f"the server is at its limit of {limit} streams (ASR_MAX_STREAMS); try again shortly"
        return message, status.WS_1013_TRY_AGAIN_LATER
    return None


@router.websocket("/v1/stream")
@router.websocket("/")
async def stream(websocket: WebSocket) -> None:
    await websocket.accept()
    state: State = websocket.app.state
    if refusal := _refusal(state):
        await websocket.send_json(ErrorReply(error=refusal[0]).wire())
        await websocket.close(refusal[1])
        return
    settings: Settings = state.settings
    metrics: Metrics = state.metrics
    recogniser, limits = state.recogniser, settings.stream_limits
    session = Session(
        recogniser,
        settings.stream,
        may_read_partial=_partial_gate(recogniser, settings, metrics),
        on_audio=metrics.audio.labels("stream").inc,
    )
    state.open_streams += 1
    metrics.streams.inc()
    try:
        await _converse(websocket, session, state.drain, limits.idle_seconds)
    except ProtocolError as error:
        await websocket.send_json(ErrorReply(error=str(error)).wire())
        await websocket.close(error.code)
    except WebSocketDisconnect:
        pass
    except Stopped as error:
        await websocket.send_json(ErrorReply(error=f"{error}; connect again").wire())
        await websocket.close(status.WS_1001_GOING_AWAY)
    except Exception as error:  # the stream ends with a reason; the server and other streams go on
        log.exception("stream failed")
        await websocket.send_json(ErrorReply(error=f"{type(error).__name__}: {error}").wire())
        await websocket.close(status.WS_1011_INTERNAL_ERROR)
    finally:
        state.open_streams -= 1
        metrics.streams.dec()


async def _converse(websocket: WebSocket, session: Session, drain: Drain, idle_seconds: float) -> None:
    """Answer the client's messages until it ends the stream, goes away, or the server drains."""
    while True:
        message = await _receive_unless_draining(websocket, drain, idle_seconds)
        if message is None:
            await websocket.send_json((await session.flush()).wire())
            await websocket.close(status.WS_1001_GOING_AWAY)
            return
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            await websocket.send_json((await session.audio(message["bytes"])).wire())
            continue
        command = parse_command(message.get("text") or "")
        if "config" in command:
            session.configure(command["config"])
        elif "reset" in command:
            await websocket.send_json((await session.flush()).wire())
        else:
            await websocket.send_json((await session.flush()).wire())
            await websocket.close()
            return

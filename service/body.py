"""What one client's request body may cost: no more bytes than the limit, and no slower than a floor.

The size is refused before a byte is read when ``Content-Length`` declares too much, and otherwise at
the chunk that crosses the limit. The pace keeps a connection from being held by a body that stops
or trickles in: no chunk for ``ASR_BODY_TIMEOUT_SECONDS``, or less than
``ASR_MIN_UPLOAD_BYTES_PER_SECOND`` on average once that long has passed, ends the request with 408.
A body still arriving when the server's drain time is up (``service.shutdown``) gets 503. All are
checked only while the body is incomplete: afterwards the route waits on ``receive`` for a
disconnect, for as long as transcription takes.
"""

from __future__ import annotations

import asyncio
import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.batching import Stopped
from service.errors import ApiError, error_response
from service.limits import UploadLimits


def too_large(limit: int) -> ApiError:
    return ApiError(413, "file_too_large", f"the upload exceeds the limit of {limit} bytes (ASR_MAX_UPLOAD_BYTES)")


class BodyLimit:
    """ASGI middleware enforcing the body's size and pace (see the module's docstring)."""

    def __init__(self, app: ASGIApp, limits: UploadLimits):
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        drain = scope["app"].state.drain
        limit, timeout, floor = (
            self.limits.max_bytes,
            self.limits.body_timeout_seconds,
            self.limits.min_bytes_per_second,
        )
        if (refusal := content_length_refusal(Headers(scope=scope).get("content-length"), limit)) is not None:
            closing = error_response(refusal.status, refusal.code, refusal.message, headers={"Connection": "close"})
            await closing(scope, receive, send)
            return
        started, received, complete = time.monotonic(), 0, False
        expired: asyncio.Future | None = None  # the drain's end, awaited beside every chunk: one task per request

        async def paced() -> Message:
            nonlocal received, complete, expired
            if complete:
                return await receive()
            if expired is None:
                expired = asyncio.ensure_future(drain.expired.wait())
            receiving = asyncio.ensure_future(receive())
            await asyncio.wait({receiving, expired}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                if drain.expired.is_set():
                    raise Stopped("the server shut down before the upload arrived")
                raise _slow(f"no part of the body arrived for {timeout:g} s (ASR_BODY_TIMEOUT_SECONDS)")
            message = receiving.result()
            received += len(message.get("body", b""))
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            if received > limit:
                raise too_large(limit)
            elapsed = time.monotonic() - started
            if not complete and elapsed > timeout and received < floor * elapsed:
                raise _slow(f"the body arrives at {received / elapsed:.0f} B/s (ASR_MIN_UPLOAD_BYTES_PER_SECOND)")
            return message

        try:
            await self.app(scope, paced, send)
        finally:
            if expired is not None:
                expired.cancel()


def content_length_refusal(declared: str | None, limit: int) -> ApiError | None:
    """Why a ``Content-Length`` header is refused, if it is; its digits are never converted when they are
    too many to fit the limit (Python refuses to convert 5,000 digits, and that was a 500 on every route)."""
    if declared is None:
        return None
    if not declared.isdigit() or not declared.isascii():
        return ApiError(400, "invalid_content_length", f"Content-Length must be a number of bytes, not {declared:.40}")
    digits = declared.lstrip("0") or "0"
    if len(digits) > len(str(limit)) or int(digits) > limit:
        return too_large(limit)
    return None


def _slow(message: str) -> ApiError:
    return ApiError(408, "request_timeout", message, headers={"Connection": "close"})

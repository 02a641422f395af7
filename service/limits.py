"""What one client may ask of the service: a body no larger than the limit, refused as it streams in."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ApiError, error_response


def too_large(limit: int) -> ApiError:
    return ApiError(413, "file_too_large", f"the upload exceeds the limit of {limit} bytes (ASR_MAX_UPLOAD_BYTES)")


class BodyLimit:
    """ASGI middleware: a declared Content-Length past the limit is refused before any byte is read, and
    a body that grows past it (chunked, or lying about its length) at the chunk that crosses it."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = scope["app"].state.settings.max_upload_bytes
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            error = too_large(limit)
            await error_response(error.status, error.code, error.message, headers={"Connection": "close"})(
                scope, receive, send
            )
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise too_large(limit)
            return message

        await self.app(scope, counted, send)

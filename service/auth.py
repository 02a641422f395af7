"""Optional API keys on the recognition API (``/v1/...``); probes, metrics and docs stay open.

A key comes as ``Authorization: Bearer KEY``, or, for browsers' WebSockets, which cannot set
headers, as ``?api_key=KEY``. Keys are compared as SHA-256 digests with ``hmac.compare_digest``,
against every configured key whatever the outcome, so timing tells nothing. A missing, malformed
and wrong key get the same answer.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette import status
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from service.errors import error_response

PROTECTED = "/v1/"
MESSAGE = "a valid API key is required: send 'Authorization: Bearer KEY' (or ?api_key=KEY on the WebSocket)"


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _presented(scope: Scope) -> str:
    header = Headers(scope=scope).get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if scope["type"] == "websocket":
        return QueryParams(scope.get("query_string", b"")).get("api_key", "")
    return ""


def authorised(scope: Scope, keys: tuple[bytes, ...]) -> bool:
    presented = digest(_presented(scope))
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented, key)
    return matched


def protected(scope: Scope) -> bool:
    """The API under ``/v1/``, and the stream at ``/``, where Vosk's clients connect."""
    return scope["path"].startswith(PROTECTED) or (scope["type"] == "websocket" and scope["path"] == "/")


class ApiKeys:
    """ASGI middleware: ``keys`` are the digests of the accepted keys; none means the API is open."""

    def __init__(self, app: ASGIApp, keys: tuple[bytes, ...]):
        self.app, self.keys = app, keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.keys
            or scope["type"] not in ("http", "websocket")
            or not protected(scope)
            or authorised(scope, self.keys)
        ):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "http":
            response = error_response(401, "invalid_api_key", MESSAGE, headers={"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        await websocket.accept()
        await websocket.send_json({"error": MESSAGE})
        await websocket.close(status.WS_1008_POLICY_VIOLATION)

"""One JSON error shape for every failure, OpenAI's: ``{"error": {"code", "message", "type", "param"}}``, and
every domain exception mapped to its HTTP status here (:func:`install`), and nowhere else.

``type`` is ``invalid_request_error`` for the client's mistakes (4xx) and ``server_error`` otherwise;
``param`` names the offending field when there is one.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from asr.audio import AudioDecodeError, AudioTooLong
from service.batching import Stopped
from service.request_options import InvalidOption

log = logging.getLogger(__name__)


class ApiError(StarletteHTTPException):
    """A failure with its status and code. An HTTPException, so it also leaves FastAPI's form parsing intact."""

    def __init__(
        self, status: int, code: str, message: str, param: str | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(status, message, headers)
        self.status, self.code, self.message, self.param = status, code, message, param


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"code": code, "message": message, "type": kind, "param": param}}


def error_response(
    status: int, code: str, message: str, param: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, code, message, param), status_code=status, headers=headers)


def describe(errors: Sequence[dict]) -> str:
    """Pydantic's validation errors as one line: ``field: problem; ...``."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)


def classify(error: Exception) -> tuple[int, str, str, str | None]:
    """Status, code, message and param of a failure that ends a request, answered or streamed (:mod:`service.sse`)."""
    match error:
        case ApiError():
            return error.status, error.code, error.message, error.param
        case InvalidOption():
            return 400, f"invalid_{error.param}", str(error), error.param
        case AudioDecodeError():
            return 400, "invalid_audio", str(error), None
        case AudioTooLong():
            return 413, "audio_too_long", str(error), None
        case Stopped():
            return 503, "shutting_down", f"{error}; send the request again", None
    return 500, "internal_error", f"{type(error).__name__}: {error}", None


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(*classify(error), error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = describe(error.errors())
        fields = {str(e["loc"][-1]) for e in error.errors() if e["loc"]}
        return error_response(422, "invalid_request", problems, fields.pop() if len(fields) == 1 else None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return error_response(error.status_code, "http_error", str(error.detail))

    @app.exception_handler(ClientDisconnect)
    async def client_gone(_: Request, error: ClientDisconnect) -> JSONResponse:
        """Nobody reads this answer; it is what the access log and the metrics record (nginx's code)."""
        return error_response(499, "client_closed_request", "the client closed the connection mid-request")

    for known in (InvalidOption, AudioDecodeError, AudioTooLong, Stopped):
        app.add_exception_handler(known, _classified)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(*classify(error))


async def _classified(_: Request, error: Exception) -> JSONResponse:
    return error_response(*classify(error))

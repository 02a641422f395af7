"""Getting uploaded audio off the wire and through recognition, with every failure a clear 4xx."""

from __future__ import annotations

import tempfile
from typing import BinaryIO

from fastapi import Request
from starlette.datastructures import UploadFile

from asr.audio import AudioDecodeError
from service.engine import Engine
from service.errors import ApiError
from service.files import FileTranscript, transcribe_file
from service.metrics import Metrics
from service.settings import Settings


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "file_too_large", f"the upload exceeds the limit of {limit} bytes (ASR_MAX_UPLOAD_BYTES)")


async def spool_body(request: Request, limit: int) -> BinaryIO:
    """The raw request body in a temporary file (in memory while small), refused once past ``limit``."""
    body = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (the caller closes it)
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            body.close()
            raise _too_large(limit)
        body.write(chunk)
    body.seek(0)
    return body


def check_upload(upload: UploadFile, limit: int) -> None:
    if upload.size is not None and upload.size > limit:
        raise _too_large(limit)
    upload.file.seek(0)


async def recognise(
    source: BinaryIO, name: str, engine: Engine, settings: Settings, metrics: Metrics
) -> FileTranscript:
    """Transcribe a whole file; audio that cannot be decoded is a 400 that names the file and the problem."""
    try:
        result = await transcribe_file(
            source,
            engine.batcher,
            engine.transcriber.info.feature_config,
            settings.window_seconds,
            settings.window_overlap_seconds,
            settings.windows_in_flight,
            name,
        )
    except AudioDecodeError as error:
        raise ApiError(400, "invalid_audio", f"{name}: {error}") from None
    metrics.audio.labels("file").inc(result.duration)
    return result

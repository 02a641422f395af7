"""The native file API: ``POST /v1/transcribe``."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile

from service.dependencies import AdmittedRecogniserDep, MetricsDep, SettingsDep
from service.errors import ApiError
from service.request_options import DecodingQuery, decoding_for
from service.schemas import Transcription
from service.uploads import recognise, spool_body

router = APIRouter(tags=["files"])

_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": "The audio file"}},
                }
            },
            "audio/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/v1/transcribe",
    response_model=Transcription,
    summary="Transcribe one audio file",
    description="Send the audio as the multipart field `file`, or as the raw request body. WAV, FLAC, MP3, "
    "OGG/Vorbis, Opus, WebM or M4A/AAC; any sample rate and channel count; any length. The query fields "
    "choose how it is decoded: beam search with the language model by default.",
    openapi_extra=_BODY,
)
async def transcribe(
    request: Request,
    recogniser: AdmittedRecogniserDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    query: Annotated[DecodingQuery, Query()],
) -> Transcription:
    started = time.perf_counter()
    decoding = decoding_for(recogniser.decoding, query)
    windowing, limits = settings.windowing, settings.file_limits
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form() as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "invalid_request", "file: send the audio as the multipart field 'file'")
            name = upload.filename or "the upload"
            result = await recognise(request, upload.file, name, recogniser, decoding, windowing, limits, metrics)
    else:
        with await spool_body(request) as body:
            result = await recognise(
                request, body, "the request body", recogniser, decoding, windowing, limits, metrics
            )
    return Transcription.of(result, recogniser.model_id, time.perf_counter() - started)

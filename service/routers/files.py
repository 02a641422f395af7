"""The native file API: ``POST /v1/transcribe``."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from asr.decoding import segment
from service.dependencies import AdmittedEngineDep, MetricsDep, SettingsDep
from service.errors import ApiError
from service.schemas import SegmentTiming, Transcription, WordTiming
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
    "OGG/Vorbis, Opus, WebM or M4A/AAC; any sample rate and channel count; any length.",
    openapi_extra=_BODY,
)
async def transcribe(
    request: Request, engine: AdmittedEngineDep, settings: SettingsDep, metrics: MetricsDep
) -> Transcription:
    started = time.perf_counter()
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form() as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "invalid_request", "file: send the audio as the multipart field 'file'")
            result = await recognise(request, upload.file, upload.filename or "the upload", engine, settings, metrics)
    else:
        with await spool_body(request) as body:
            result = await recognise(request, body, "the request body", engine, settings, metrics)
    words = result.transcript.words
    return Transcription(
        text=result.transcript.text,
        duration=round(result.duration, 3),
        segments=[SegmentTiming.of(s) for s in segment(words)],
        words=[WordTiming.of(w) for w in words],
        model=engine.model_id,
        processing_seconds=round(time.perf_counter() - started, 4),
    )

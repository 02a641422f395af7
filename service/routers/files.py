"""The native file API: ``POST /v1/transcribe``."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.datastructures import UploadFile

from asr.decoding import segment
from service.decoding import DecodingQuery, InvalidOption, options_for
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
    "OGG/Vorbis, Opus, WebM or M4A/AAC; any sample rate and channel count; any length. The query fields "
    "choose how it is decoded: beam search with the language model by default.",
    openapi_extra=_BODY,
)
async def transcribe(
    request: Request,
    engine: AdmittedEngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    query: Annotated[DecodingQuery, Query()],
) -> Transcription:
    started = time.perf_counter()
    try:
        options = options_for(engine, query)
    except InvalidOption as error:
        raise ApiError(400, f"invalid_{error.param}", str(error), error.param) from None
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form() as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(422, "invalid_request", "file: send the audio as the multipart field 'file'")
            name = upload.filename or "the upload"
            result = await recognise(request, upload.file, name, engine, settings, metrics, options)
    else:
        with await spool_body(request) as body:
            result = await recognise(request, body, "the request body", engine, settings, metrics, options)
    words = result.transcript.words
    return Transcription(
        text=result.transcript.text,
        duration=round(result.duration, 3),
        segments=[SegmentTiming.of(s) for s in segment(words)],
        words=[WordTiming.of(w) for w in words],
        model=engine.model_id,
        processing_seconds=round(time.perf_counter() - started, 4),
    )

"""HTTP routes: liveness and file transcription."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, File, UploadFile

from asr.audio import AudioDecodeError, decode
from service.dependencies import SettingsDep, TranscriberDep
from service.errors import ApiError
from service.schemas import Health, Transcription, WordTiming

router = APIRouter()


@router.get("/health", response_model=Health, summary="Liveness: the process is up and the model loaded")
async def health() -> Health:
    return Health(status="ok")


@router.post("/v1/transcribe", response_model=Transcription, summary="Transcribe one audio file")
async def transcribe(
    transcriber: TranscriberDep,
    settings: SettingsDep,
    file: Annotated[UploadFile, File(description="WAV, FLAC, OGG or MP3 audio")],
) -> Transcription:
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise ApiError(413, "file_too_large", f"the upload exceeds the limit of {settings.max_upload_bytes} bytes")
    started = time.perf_counter()
    try:
        waveform, rate = await asyncio.to_thread(decode, data)
    except AudioDecodeError as error:
        raise ApiError(400, "invalid_audio", f"{file.filename or 'the upload'}: {error}") from None
    [transcript] = await asyncio.to_thread(transcriber.transcribe, [(waveform, rate)])
    return Transcription(
        text=transcript.text,
        duration=round(waveform.shape[-1] / rate, 3),
        words=[
            WordTiming(word=w.word, start=round(w.start, 3), end=round(w.end, 3), confidence=round(w.confidence, 4))
            for w in transcript.words
        ],
        model=transcriber.name,
        processing_seconds=round(time.perf_counter() - started, 4),
    )

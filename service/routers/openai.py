"""The OpenAI-compatible API, so that OpenAI's clients and the tools built on them work unchanged.

``POST /v1/audio/transcriptions`` takes OpenAI's form fields, and ``hotwords`` (send it with the
client's ``extra_body``). Options that only tune how Whisper searches (``prompt``, ``temperature``,
``include[]``, ``chunking_strategy``) are accepted and ignored; anything whose silent omission
would mislead the caller (another language, streaming, an unknown model or format) is a 400 naming
the field.
"""

from __future__ import annotations

import datetime
import gzip
import math
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from asr import captions
from asr.decoding import segment
from service.decoding import DecodingQuery, InvalidOption, options_for
from service.dependencies import AdmittedEngineDep, EngineDep, MetricsDep, SettingsDep
from service.engine import Engine
from service.errors import ApiError
from service.schemas import ModelCard, ModelList
from service.uploads import recognise

router = APIRouter(tags=["OpenAI-compatible"])

OPENAI_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
"""OpenAI's transcription model names, served by the loaded model so that clients' defaults work."""
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("word", "segment")
ENGLISH = ("en", "english")


def _reject(param: str, message: str) -> ApiError:
    return ApiError(400, f"invalid_{param}", f"{param}: {message}", param)


@router.post(
    "/v1/audio/transcriptions",
    summary="Transcribe audio (OpenAI-compatible)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}, "text/plain": {}}}},
)
async def transcriptions(
    request: Request,
    engine: AdmittedEngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    file: Annotated[UploadFile, File(description="The audio file, in any supported format")],
    model: Annotated[str, Form(description=f"The loaded model's id, or one of {', '.join(OPENAI_MODELS)}")],
    language: Annotated[str | None, Form(description="en (the only language of the model), or omit it")] = None,
    prompt: Annotated[str | None, Form(description="Accepted and ignored; to favour words, send hotwords")] = None,
    response_format: Annotated[str, Form(description=", ".join(RESPONSE_FORMATS))] = "json",
    temperature: Annotated[float, Form(description="Accepted and ignored: decoding is deterministic")] = 0.0,
    timestamp_granularities: Annotated[
        list[str] | None, Form(alias="timestamp_granularities[]", description="word and/or segment (verbose_json)")
    ] = None,
    stream: Annotated[bool, Form(description="Must be false: stream live audio over WS /v1/stream instead")] = False,
    hotwords: Annotated[
        list[str] | None,
        Form(description="This service's extension: words or phrases to favour, comma-separated or repeated"),
    ] = None,
) -> Response:
    if model not in (engine.model_id, *OPENAI_MODELS):
        raise _reject("model", f"no model {model!r} here; use {engine.model_id!r} (GET /v1/models)")
    if language is not None and language.lower() not in ENGLISH:
        raise _reject("language", f"the model recognises English only ('en'), not {language!r}")
    if response_format not in RESPONSE_FORMATS:
        raise _reject("response_format", f"{response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}")
    if not 0 <= temperature <= 1:
        raise _reject("temperature", f"must be between 0 and 1, not {temperature}")
    granularities = timestamp_granularities or []
    if unknown := sorted(set(granularities) - set(GRANULARITIES)):
        raise _reject("timestamp_granularities", f"{', '.join(unknown)} is not one of {', '.join(GRANULARITIES)}")
    if granularities and response_format != "verbose_json":
        raise _reject("timestamp_granularities", "needs response_format verbose_json")
    if stream:
        raise _reject("stream", "streamed responses are not supported; stream live audio over WS /v1/stream")

    try:
        options = options_for(engine, DecodingQuery(hotwords=hotwords or []))
    except InvalidOption as error:
        raise _reject(error.param, str(error).removeprefix(f"{error.param}: ")) from None
    name = file.filename or "the upload"
    result = await recognise(request, file.file, name, engine, settings, metrics, options)
    transcript, duration = result.transcript, result.duration
    segments = segment(transcript.words)
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(captions.srt(segments))
    if response_format == "vtt":
        return PlainTextResponse(captions.vtt(segments), media_type="text/vtt")
    usage = {"type": "duration", "seconds": math.ceil(duration)}
    if response_format == "json":
        return JSONResponse({"text": transcript.text, "usage": usage})
    body: dict = {"task": "transcribe", "language": "english", "duration": round(duration, 3), "text": transcript.text}
    if "segment" in granularities or not granularities:
        body["segments"] = [
            {
                "id": n,
                "seek": 0,
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "tokens": [],
                "temperature": 0.0,
                "avg_logprob": round(sum(math.log(max(w.confidence, 1e-12)) for w in s.words) / len(s.words), 4),
                "compression_ratio": round(len(s.text.encode()) / len(gzip.compress(s.text.encode())), 4),
                "no_speech_prob": 0.0,
            }
            for n, s in enumerate(segments)
        ]
    if "word" in granularities:
        body["words"] = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)} for w in transcript.words]
    body["usage"] = usage
    return JSONResponse(body)


def _card(engine: Engine) -> ModelCard:
    created = engine.transcriber.info.provenance.get("created")
    stamp = int(datetime.datetime.fromisoformat(created).timestamp()) if created else 0
    return ModelCard(id=engine.model_id, created=stamp)


@router.get("/v1/models", response_model=ModelList, summary="The loaded model (OpenAI-compatible)")
async def models(engine: EngineDep) -> ModelList:
    return ModelList(data=[_card(engine)])


@router.get("/v1/models/{model_id}", response_model=ModelCard, summary="One model (OpenAI-compatible)")
async def model(model_id: str, engine: EngineDep) -> ModelCard:
    if model_id != engine.model_id:
        raise ApiError(404, "model_not_found", f"no model {model_id!r} here; GET /v1/models lists the loaded one")
    return _card(engine)

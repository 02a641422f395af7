"""The OpenAI-compatible API, so that OpenAI's clients and the tools built on them work unchanged.

``POST /v1/audio/transcriptions`` takes OpenAI's form fields, and ``hotwords`` (send it with the
client's ``extra_body``); ``POST /v1/audio/translations`` too, where English speech's translation into
English is its transcript. Options that only tune how Whisper searches (``prompt``, ``temperature``,
``chunking_strategy``) are accepted and ignored; ``stream`` gives server-sent events
(:mod:`service.sse`); anything whose silent omission would mislead the caller (another language, an
unknown model or format) is a 400 naming the field (:mod:`service.openai_formats`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from asr.transcript import Word
from service.dependencies import AdmittedRecogniserDep, MetricsDep, RecogniserDep, SettingsDep
from service.errors import ApiError
from service.metrics import Metrics
from service.openai_formats import OPENAI_MODELS, RESPONSE_FORMATS, check, reject, render
from service.recogniser import Recogniser
from service.request_options import DecodingQuery, decoding_for
from service.schemas import ModelCard, ModelList
from service.settings import Settings
from service.sse import transcription_events
from service.uploads import recognise
from service.windowing import FileTranscript

router = APIRouter(tags=["OpenAI-compatible"])

# The form fields and answers that transcriptions and translations share.
Model = Annotated[str, Form(description=f"The loaded model's id, or one of {', '.join(OPENAI_MODELS)}")]
ResponseFormat = Annotated[str, Form(description=", ".join(RESPONSE_FORMATS))]
Temperature = Annotated[float, Form(description="Accepted and ignored: decoding is deterministic")]
Hotwords = Annotated[
    list[str] | None,
    Form(description="This service's extension: words or phrases to favour, comma-separated or repeated"),
]
TEXT_OR_JSON = {200: {"content": {"application/json": {}, "text/plain": {}}}}


@router.post(
    "/v1/audio/transcriptions",
    summary="Transcribe audio (OpenAI-compatible)",
    response_class=Response,
    responses=TEXT_OR_JSON,
)
async def transcriptions(
    request: Request,
    recogniser: AdmittedRecogniserDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    file: Annotated[UploadFile, File(description="The audio file, in any supported format")],
    model: Model,
    language: Annotated[str | None, Form(description="en (the only language of the model), or omit it")] = None,
    prompt: Annotated[str | None, Form(description="Accepted and ignored; to favour words, send hotwords")] = None,
    response_format: ResponseFormat = "json",
    temperature: Temperature = 0.0,
    timestamp_granularities: Annotated[
        list[str] | None, Form(alias="timestamp_granularities[]", description="word and/or segment (verbose_json)")
    ] = None,
    include: Annotated[
        list[str] | None, Form(alias="include[]", description="logprobs: each character's log probability (json)")
    ] = None,
    stream: Annotated[
        bool,
        Form(description="Server-sent events as the file's windows finish (ignored for whisper-1, as OpenAI does)"),
    ] = False,
    hotwords: Hotwords = None,
) -> Response:
    granularities = timestamp_granularities or []
    include = include or []
    check(model, recogniser.model_id, language, response_format, temperature, granularities, include)
    if stream and model != "whisper-1":  # OpenAI ignores the flag for whisper-1
        if response_format not in ("json", "text"):
            raise reject("stream", f"streamed text comes as events, not as {response_format}: use json or text")
        return await transcription_events(
            lambda told: _recognised(request, recogniser, settings, metrics, file, hotwords, told),
            "logprobs" in include,
        )
    result = await _recognised(request, recogniser, settings, metrics, file, hotwords)
    return render(result, response_format, granularities, include=include)


@router.post(
    "/v1/audio/translations",
    summary="Translate audio into English (OpenAI-compatible): English speech gives its transcript",
    response_class=Response,
    responses=TEXT_OR_JSON,
)
async def translations(
    request: Request,
    recogniser: AdmittedRecogniserDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    file: Annotated[UploadFile, File(description="The audio file, English speech, in any supported format")],
    model: Model,
    language: Annotated[
        str | None, Form(description="Not OpenAI's: some clients send the speech's language; en, or omit it")
    ] = None,
    prompt: Annotated[str | None, Form(description="Accepted and ignored")] = None,
    response_format: ResponseFormat = "json",
    temperature: Temperature = 0.0,
    hotwords: Hotwords = None,
) -> Response:
    check(model, recogniser.model_id, language, response_format, temperature, [])
    result = await _recognised(request, recogniser, settings, metrics, file, hotwords)
    return render(result, response_format, [], task="translate")


async def _recognised(
    request: Request,
    recogniser: Recogniser,
    settings: Settings,
    metrics: Metrics,
    file: UploadFile,
    hotwords: list[str] | None,
    on_words: Callable[[list[Word]], None] = lambda words: None,
) -> FileTranscript:
    decoding = decoding_for(recogniser.decoding, DecodingQuery(hotwords=hotwords or []))
    name = file.filename or "the upload"
    return await recognise(
        request, file.file, name, recogniser, decoding, settings.windowing, settings.file_limits, metrics, on_words
    )


def _card(recogniser: Recogniser) -> ModelCard:
    return ModelCard(id=recogniser.model_id, created=recogniser.created)


@router.get("/v1/models", response_model=ModelList, summary="The loaded model (OpenAI-compatible)")
async def models(recogniser: RecogniserDep) -> ModelList:
    return ModelList(data=[_card(recogniser)])


@router.get("/v1/models/{model_id}", response_model=ModelCard, summary="One model (OpenAI-compatible)")
async def model(model_id: str, recogniser: RecogniserDep) -> ModelCard:
    if model_id != recogniser.model_id:
        raise ApiError(404, "model_not_found", f"no model {model_id!r} here; GET /v1/models lists the loaded one")
    return _card(recogniser)

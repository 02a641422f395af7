"""OpenAI's transcription API as data: which requests it takes, and its five response formats as models.

The route (:mod:`service.routers.openai`) only checks a request with :func:`check` and answers with :func:`render`.
"""

from __future__ import annotations

import gzip
import math
import re
from typing import Literal

from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from asr import captions
from asr.text import encode
from asr.transcript import Segment, Word, segment
from service.errors import ApiError
from service.windowing import FileTranscript

OPENAI_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
"""OpenAI's transcription model names, served by the loaded model so that clients' defaults work."""
RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("word", "segment")
INCLUDES = ("logprobs",)
ENGLISH = ("en", "eng", "english")
"""Language names and tags' primary subtags that mean English (``en-US`` and ``en_GB`` too)."""


class Usage(BaseModel):
    type: str = "duration"
    seconds: int
    """Whole seconds of audio, rounded up."""

    @classmethod
    def of(cls, result: FileTranscript) -> Usage:
        return cls(seconds=math.ceil(result.duration))


class TranscriptionJson(BaseModel):
    text: str
    logprobs: list[Logprob] | None = None
    usage: Usage


class Logprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


def logprobs(words: list[Word], continuing: bool = False) -> list[Logprob]:
    """One token per character of the text, spaces too: the model's tokens are characters. A space the decoded
    path did not spell (before a word at a window's edge, or before ``words`` that go on an earlier text) counts
    as certain: words are joined by one."""
    tokens = []
    for number, word in enumerate(words):
        if number or continuing:
            tokens.append((" ", 0.0 if word.space_logprob is None else word.space_logprob))
        tokens += zip(word.word, word.letter_logprobs, strict=True)
    return [Logprob(token=t, logprob=round(lp, 6), bytes=list(t.encode())) for t, lp in tokens]


class VerboseSegment(BaseModel):
    id: int
    seek: int
    """Whisper's offset of the segment's window in 10 ms frames; here the segment's own start."""
    start: float
    end: float
    text: str
    tokens: list[int]
    """The model's tokens: each character's class (``asr.text.encode``)."""
    temperature: float = 0.0
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    """The chance that none of its letters was there: the product of each one's posterior of anything else
    (almost all of it the blank's)."""

    @classmethod
    def of(cls, number: int, part: Segment) -> VerboseSegment:
        text = part.text.encode()
        letters = [lp for w in part.words for lp in w.letter_logprobs]
        return cls(
            id=number,
            seek=round(part.start * 100),
            start=round(part.start, 3),
            end=round(part.end, 3),
            text=part.text,
            tokens=encode(part.text),
            avg_logprob=round(sum(math.log(max(w.confidence, 1e-12)) for w in part.words) / len(part.words), 4),
            compression_ratio=round(len(text) / len(gzip.compress(text)), 4),
            no_speech_prob=round(math.prod(-math.expm1(lp) for lp in letters), 6),
        )


class VerboseWord(BaseModel):
    word: str
    start: float
    end: float

    @classmethod
    def of(cls, word: Word) -> VerboseWord:
        return cls(word=word.word, start=round(word.start, 3), end=round(word.end, 3))


class VerboseTranscription(BaseModel):
    task: Literal["transcribe", "translate"] = "transcribe"
    language: str = "english"
    duration: float
    text: str
    segments: list[VerboseSegment] | None = None
    words: list[VerboseWord] | None = None
    usage: Usage


def reject(param: str, message: str) -> ApiError:
    return ApiError(400, f"invalid_{param}", f"{param}: {message}", param)


def check(
    model: str,
    served: str,
    language: str | None,
    response_format: str,
    temperature: float,
    granularities: list[str],
    include: list[str] = (),
) -> None:
    """Refuse, naming the field, what the loaded model cannot honour: another model or language, an unknown format,
    granularity or inclusion, word and segment times outside verbose_json, or logprobs outside json."""
    if model not in (served, *OPENAI_MODELS):
        raise reject("model", f"no model {model!r} here; use {served!r} (GET /v1/models)")
    if language is not None and re.split(r"[-_]", language.lower())[0] not in ENGLISH:
        raise reject("language", f"the model recognises English only ('en'), not {language!r}")
    if response_format not in RESPONSE_FORMATS:
        raise reject("response_format", f"{response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}")
    if not 0 <= temperature <= 1:
        raise reject("temperature", f"must be between 0 and 1, not {temperature}")
    if unknown := sorted(set(granularities) - set(GRANULARITIES)):
        raise reject("timestamp_granularities", f"{', '.join(unknown)} is not one of {', '.join(GRANULARITIES)}")
    if granularities and response_format != "verbose_json":
        raise reject("timestamp_granularities", "needs response_format verbose_json")
    if unknown := sorted(set(include) - set(INCLUDES)):
        raise reject("include", f"{', '.join(unknown)} is not one of {', '.join(INCLUDES)}")
    if include and response_format != "json":
        raise reject("include", "logprobs need response_format json")


def render(
    result: FileTranscript,
    response_format: str,
    granularities: list[str],
    task: str = "transcribe",
    include: list[str] = (),
) -> Response:
    """The transcript as OpenAI answers in ``response_format``; verbose_json has segments unless only word times
    were asked for. A translation (``task``) of English speech into English is its transcript, in OpenAI's
    translation shapes: json without ``usage``, verbose_json's ``task`` "translate"."""
    transcript = result.transcript
    segments = segment(transcript.words)
    if response_format == "text":
        return PlainTextResponse(transcript.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(captions.srt(segments))
    if response_format == "vtt":
        return PlainTextResponse(captions.vtt(segments), media_type="text/vtt")
    usage = Usage.of(result)
    if response_format == "json":
        if task == "translate":
            return JSONResponse({"text": transcript.text})
        chars = logprobs(transcript.words) if "logprobs" in include else None
        return JSONResponse(
            TranscriptionJson(text=transcript.text, logprobs=chars, usage=usage).model_dump(exclude_none=True)
        )
    body = VerboseTranscription(
        task=task,
        duration=round(result.duration, 3),
        text=transcript.text,
        segments=[VerboseSegment.of(n, s) for n, s in enumerate(segments)]
        if "segment" in granularities or not granularities
        else None,
        words=[VerboseWord.of(w) for w in transcript.words] if "word" in granularities else None,
        usage=usage,
    )
    return JSONResponse(body.model_dump(exclude_none=True))

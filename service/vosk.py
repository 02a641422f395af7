"""The Vosk server's WebSocket protocol, free of the network: messages in, replies out, for one stream.

Existing Vosk clients work unchanged: ``{"config": {...}}`` text messages (no reply; usually one
first, but taken at any time: :meth:`Session.configure`), binary 16-bit little-endian mono PCM in
chunks of any size, each answered by exactly one message: ``{"partial": ...}`` while an utterance is
open, or ``{"result": [...], "text": ...}`` when one closed in that chunk. The config takes Vosk's
``phrase_list`` (its closed grammar: :attr:`asr.beam.Beam.grammar`) and ``max_alternatives`` (results
become ``{"alternatives": [...]}``, each with its ``confidence``), and this service's decoding fields,
as in the REST query: ``decoder``, ``beam_size``, ``lm_weight``, ``word_score``, ``hotwords`` (words
to favour), ``hotword_boost``.
``{"eof" : 1}`` answers with the last result and closes; ``{"reset" : 1}`` answers with the open
utterance's result and starts a new one. Problems raise :class:`ProtocolError`, which the route
answers with ``{"error": ...}`` and its close code. ``service.routers.stream`` carries this over the
socket.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from starlette import status

from asr.audio import AudioDecodeError, check_sample_rate, sanitise
from asr.beam import Beam
from asr.decoding import Greedy
from asr.features import resample
from asr.incremental import Settled
from asr.transcriber import Decoding
from asr.transcript import Transcript
from service.limits import MAX_ALTERNATIVES
from service.recogniser import Recogniser, StreamRead, transcribe
from service.request_options import DecodingQuery, InvalidOption, decoding_for
from service.vad import Stream, Utterance, VadConfig

ENCODINGS = {"pcm_s16le": (2, torch.int16), "pcm_f32le": (4, torch.float32)}
"""Binary audio formats a config may name: bytes per sample and type."""


@dataclass(frozen=True)
class StreamConfig:
    """From ``ASR_STREAM_*`` (their defaults are :class:`service.settings.Settings`')."""

    sample_rate: int
    """The PCM rate of streams that send no config."""
    partial_beam_size: int
    """The widest beam of a partial read, whose text is provisional; 0 reads partials greedily."""
    vad: VadConfig


class ProtocolError(Exception):
    """What ends a stream: its message goes to the client as ``{"error": ...}``, then a close with ``code``."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class Reply(BaseModel):
    def wire(self) -> dict:
        """The message as JSON-ready data, without the fields that do not apply."""
        return self.model_dump(exclude_none=True)


class Partial(Reply):
    partial: str


class WordResult(BaseModel):
    conf: float
    end: float
    start: float
    word: str


class Result(Reply):
    result: list[WordResult] | None = None
    """Absent with ``"words": false`` in the config, or when nothing was said."""
    text: str


class Alternative(Result):
    confidence: float


class Alternatives(Reply):
    alternatives: list[Alternative]


class ErrorReply(Reply):
    error: str


def _refuse(message: str) -> PydanticCustomError:
    return PydanticCustomError("vosk", message)


def _as_vosk_reads(value: object) -> object:
    """A number as Vosk's server reads one, with Python's ``int()``: 2, 2.0, 2.7 and "2" are 2. What ``int()``
    refuses ("2.5", null, a list) stays as it is, for the field's own check to refuse."""
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


class VoskConfig(DecodingQuery):
    """A config message's fields: Vosk's, then this service's decoding fields as in the REST query. Fields left
    out keep the stream's values (its rate, encoding and ``words``) or the server's (the decoding)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=False)

    sample_rate: int | None = None
    encoding: Literal["pcm_s16le", "pcm_f32le"] | None = None
    words: bool | None = None
    max_alternatives: int = 0
    grammar: list[object] = Field([], alias="phrase_list")

    @field_validator("sample_rate", mode="before")
    @classmethod
    def _rate(cls, value: object) -> int:
        try:
            return check_sample_rate(_as_vosk_reads(value))
        except AudioDecodeError as error:
            raise _refuse(str(error).replace("the sample rate", "sample_rate")) from None

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding(cls, value: object) -> object:
        if not isinstance(value, str) or value not in ENCODINGS:
            raise _refuse(f"encoding must be one of {', '.join(ENCODINGS)}, not {value!r}")
        return value

    @field_validator("words", mode="before")
    @classmethod
    def _words(cls, value: object) -> bool:
        return bool(value)

    @field_validator("max_alternatives", mode="before")
    @classmethod
    def _alternatives(cls, value: object) -> int:
        """Vosk takes any count (its own example sends 20); past :data:`MAX_ALTERNATIVES` results carry that many."""
        count = _as_vosk_reads(value)
        if type(count) is not int or count < 0:
            raise _refuse(f"max_alternatives must be a whole number from 0 up, not {value!r}")
        return min(count, MAX_ALTERNATIVES)

    @field_validator("grammar", "hotwords", mode="before")
    @classmethod
    def _phrases(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, list):
            name = "phrase_list" if info.field_name == "grammar" else info.field_name
            raise _refuse(f"{name} must be a list of words or phrases, not {value!r}")
        return value

    @classmethod
    def parse(cls, config: object, earlier: dict[str, object] | None = None) -> VoskConfig:
        """``config`` over the fields of ``earlier`` configs; one that names a ``decoder`` starts the decoding
        afresh (``{"decoder": "greedy"}`` drops an earlier ``phrase_list``)."""
        if not isinstance(config, dict):
            raise ProtocolError('config must be an object, e.g. {"config": {"sample_rate": 16000}}', _INVALID)
        kept = {k: v for k, v in (earlier or {}).items() if "decoder" not in config or k not in _DECODING_FIELDS}
        try:
            return cls.model_validate({**kept, **config})
        except ValidationError as error:
            problems = [
                e["msg"] if e["type"] == "vosk" else f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                for e in error.errors()
            ]
            raise ProtocolError("; ".join(problems), _INVALID) from None


_INVALID = status.WS_1007_INVALID_FRAME_PAYLOAD_DATA
_DECODING_FIELDS = {"phrase_list", "max_alternatives", *DecodingQuery.model_fields}


def parse_command(text: str) -> dict:
    """A text message: ``{"config": {...}}``, ``{"eof" : 1}`` or ``{"reset" : 1}``."""
    try:
        message = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProtocolError(f"text messages must be JSON ({error})", _INVALID) from None
    except RecursionError:
        raise ProtocolError("text messages must be JSON nested a few levels deep, not thousands", _INVALID) from None
    if not isinstance(message, dict) or not message.keys() & {"config", "eof", "reset"}:
        raise ProtocolError(
            'expected {"config": {...}}, {"eof" : 1} or {"reset" : 1}; audio goes in binary messages',
            status.WS_1003_UNSUPPORTED_DATA,
        )
    return message


class Session:
    """One client's stream: its settings, its audio cut into utterances, and the reply to each message."""

    def __init__(
        self,
        recogniser: Recogniser,
        config: StreamConfig,
        may_read_partial: Callable[[], bool] = lambda: True,
        on_audio: Callable[[float], None] = lambda seconds: None,
    ):
        """``may_read_partial``: whether the model has room for a partial read now (finals are always read);
        ``on_audio``: told the seconds of each message's audio."""
        self.recogniser, self.config = recogniser, config
        self.may_read_partial, self.on_audio = may_read_partial, on_audio
        self.sample_rate = config.sample_rate
        self.encoding = "pcm_s16le"
        self.words = True
        self.decoding: Decoding = recogniser.decoding
        self.alternatives = 0
        """Vosk's max_alternatives: above 0, results list that many hypotheses instead of one."""
        self._fields: dict[str, object] = {}
        """The configs' fields so far, as given."""
        self.stream: Stream | None = None
        self._closed: list[Utterance] = []
        """Utterances a format change ended, answered with the next message."""
        self.partial = ""
        self._leftover = b""
        self._settled: tuple[float, Settled] | None = None
        """The open utterance's start and what its partial reads have settled."""

    def configure(self, raw: object) -> None:
        """Take a config at any time, as Vosk does: its fields join those of earlier configs (a later one changes
        only what it names). Decoding changes apply at once, to the open utterance's final read too. A new rate
        or encoding ends the open utterance where the audio in the old format ends; its result comes with the
        reply to the next message."""
        config = VoskConfig.parse(raw, earlier=self._fields)
        try:
            decoding = decoding_for(self.recogniser.decoding, config, config.max_alternatives, config.grammar)
        except InvalidOption as error:
            raise ProtocolError(str(error), _INVALID) from None
        self._fields = config.model_dump(by_alias=True, exclude_unset=True)
        self.words = True if config.words is None else config.words
        self.decoding, self.alternatives = decoding, config.max_alternatives
        audio_format = (config.sample_rate or self.config.sample_rate, config.encoding or "pcm_s16le")
        if audio_format != (self.sample_rate, self.encoding):
            self.sample_rate, self.encoding = audio_format
            if self.stream is not None:
                self._closed += filter(None, [self.stream.flush()])
                self.stream = Stream(self.sample_rate, self.config.vad, start=self.stream.end)
                self._leftover, self.partial = b"", ""

    async def audio(self, data: bytes) -> Reply:
        if self.stream is None:
            self.stream = Stream(self.sample_rate, self.config.vad)
        samples = self._samples(data)
        self.on_audio(samples.numel() / self.sample_rate)
        closed, self._closed = self._closed + self.stream.feed(samples), []
        if closed:
            self.partial = ""
            return await self._result(closed)
        if self.stream.partial_due() and self.may_read_partial():
            self.stream.mark_read()
            [transcript] = await self._read(self.stream.open_utterance(), partial=True)
            self.partial = transcript.text
        return Partial(partial=self.partial if self.stream.is_open else "")

    def _samples(self, data: bytes) -> torch.Tensor:
        """The message's samples as float; the bytes of a sample split across messages wait for the next one."""
        data = self._leftover + data
        width, dtype = ENCODINGS[self.encoding]
        usable = len(data) // width * width
        self._leftover = data[usable:]
        if usable == 0:  # an empty message, or less than one sample
            return torch.zeros(0)
        samples = torch.frombuffer(bytearray(data[:usable]), dtype=dtype)
        if dtype == torch.int16:
            return samples.float() / 32768
        try:
            return torch.from_numpy(sanitise(samples.numpy()))
        except AudioDecodeError:
            message = "pcm_f32le audio must hold finite samples, not NaN or infinity"
            raise ProtocolError(message, _INVALID) from None

    async def flush(self) -> Reply:
        """The result of the open utterance, if any (``{"text": ""}`` if none), and a fresh start."""
        utterances, self._closed = self._closed + [self.stream.flush() if self.stream is not None else None], []
        self.partial = ""
        return await self._result([u for u in utterances if u is not None])

    async def _result(self, utterances: list[Utterance]) -> Reply:
        readings = await asyncio.gather(*map(self._read, utterances))
        if self.alternatives:
            return Alternatives(
                alternatives=[
                    Alternative(**self._result_of(t).model_dump(), confidence=round(t.confidence, 4))
                    for t in _joined(readings)
                ]
            )
        return self._result_of(_joined(readings)[0])

    def _result_of(self, transcript: Transcript) -> Result:
        if not self.words or not transcript.words:
            return Result(text=transcript.text)
        words = [
            WordResult(conf=round(w.confidence, 4), end=round(w.end, 3), start=round(w.start, 3), word=w.word)
            for w in transcript.words
        ]
        return Result(result=words, text=transcript.text)

    def _partial_decoding(self) -> Decoding:
        """The stream's decoding with one hypothesis and at most the partial beam; greedy where that is 0."""
        if not isinstance(self.decoding, Beam):
            return self.decoding
        narrow = self.config.partial_beam_size
        if not narrow:
            return Greedy()
        return replace(self.decoding, alternatives=1, beam_size=min(narrow, self.decoding.beam_size or narrow))

    async def _read(self, utterance: Utterance, partial: bool = False) -> list[Transcript]:
        """The utterance's transcripts (alternatives too, in a final read), timed from the start of the stream.

        A partial read carries on from what the previous one settled, so it costs the same late
        in a long utterance as early on (``ASR_STREAM_WINDOW_SECONDS``); its beam search is narrower
        (``ASR_STREAM_PARTIAL_BEAM_SIZE``), as its text is provisional and it runs every few hundred
        milliseconds. The final read is a full one, with the full beam: its text is the one that stays.
        """
        audio, rate = utterance.audio, self.recogniser.sample_rate
        if utterance.rate != rate:  # resampling takes milliseconds: not on the event loop
            audio = await asyncio.to_thread(resample, audio, utterance.rate, rate)
        if partial:
            start, settled = self._settled or (None, Settled())
            read = StreamRead(audio, settled if start == utterance.start else Settled())
            log_probs, settled = await self.recogniser.read_partial(read)
            self._settled = (utterance.start, settled)
            transcripts = await self.recogniser.decode(log_probs, audio.numel() / rate, self._partial_decoding())
        else:
            transcripts = await transcribe(self.recogniser, audio, self.decoding)
            self._settled = None
        return [
            replace(
                t, words=[replace(w, start=w.start + utterance.start, end=w.end + utterance.start) for w in t.words]
            )
            for t in transcripts[: 1 if partial else None]
        ]


def _joined(readings: list[list[Transcript]]) -> list[Transcript]:
    """Utterances closed by one message, as one transcript per rank: the k-th of each (or its last), joined."""
    if not readings:
        return [Transcript("", [], 1.0)]
    joined = []
    for k in range(max(map(len, readings))):
        parts = [alternatives[min(k, len(alternatives) - 1)] for alternatives in readings]
        words = [w for part in parts for w in part.words]
        confidence = math.prod(1.0 if part.confidence is None else part.confidence for part in parts)
        joined.append(Transcript(" ".join(w.word for w in words), words, confidence))
    return joined

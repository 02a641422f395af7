"""``WS /v1/stream``: live audio in, partial and final text out, in the Vosk server protocol.

Existing Vosk clients work unchanged: an optional ``{"config": {...}}`` text message first (no
reply), then binary 16-bit little-endian mono PCM in chunks of any size, each answered by exactly
one message: ``{"partial": ...}`` while an utterance is open, or ``{"result": [...], "text": ...}``
when one closed in that chunk. The config takes Vosk's ``phrase_list`` (here: hotwords to favour,
not a closed grammar) and ``max_alternatives`` (results become ``{"alternatives": [...]}``, each
with its ``confidence``), and this service's decoding fields, as in the REST query: ``decoder``,
``beam_size``, ``lm_weight``, ``word_score``, ``hotword_boost``. ``{"eof" : 1}`` answers with the
last result and closes;
``{"reset" : 1}`` answers with the open utterance's result and starts a new one. Problems are
answered with ``{"error": ...}`` and a close code. When the server shuts down, each stream gets
its last result, as after eof, and a close with 1001 (going away): reconnect, to another replica.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from dataclasses import replace

import torch
from fastapi import APIRouter, WebSocket
from pydantic import ValidationError
from starlette.datastructures import State
from starlette.types import Message
from starlette.websockets import WebSocketDisconnect

from asr.audio import AudioDecodeError, check_sample_rate, sanitise
from asr.beam import BeamOptions
from asr.decoding import Transcript
from asr.features import prepare_waveform
from asr.incremental import Settled
from service.batching import Stopped
from service.decoding import MAX_ALTERNATIVES, DecodingQuery, InvalidOption, options_for
from service.engine import Engine, StreamRead
from service.errors import describe
from service.metrics import Metrics
from service.settings import Settings
from service.shutdown import Drain
from service.streaming import Stream, Utterance

log = logging.getLogger("service")
router = APIRouter()

GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
INVALID_PAYLOAD = 1007
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013

DECODING_FIELDS = ("decoder", "beam_size", "lm_weight", "word_score", "hotword_boost")
"""This service's config extensions, as in the REST query (Vosk's own: phrase_list, max_alternatives)."""
ENCODINGS = {"pcm_s16le": (2, torch.int16), "pcm_f32le": (4, torch.float32)}
"""Binary audio formats a config may name: bytes per sample and type."""


class ProtocolError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class Session:
    """One client's stream: parses its messages and builds each reply."""

    def __init__(self, engine: Engine, settings: Settings, metrics: Metrics):
        self.engine, self.settings, self.metrics = engine, settings, metrics
        self.sample_rate = settings.stream_sample_rate
        self.encoding = "pcm_s16le"
        self.words = True
        self.options = engine.options
        self.alternatives = 0
        """Vosk's max_alternatives: above 0, results list that many hypotheses instead of one."""
        self.stream: Stream | None = None
        self.partial = ""
        self._leftover = b""
        self._settled: tuple[float, Settled] | None = None
        """The open utterance's start and what its partial reads have settled."""

    def configure(self, config: object) -> None:
        if self.stream is not None:
            raise ProtocolError("config must come before the first audio", POLICY_VIOLATION)
        if not isinstance(config, dict):
            raise ProtocolError('config must be an object, e.g. {"config": {"sample_rate": 16000}}', INVALID_PAYLOAD)
        try:
            rate = check_sample_rate(config.get("sample_rate", self.sample_rate))
        except AudioDecodeError as error:
            raise ProtocolError(str(error).replace("the sample rate", "sample_rate"), INVALID_PAYLOAD) from None
        encoding = config.get("encoding", self.encoding)
        if not isinstance(encoding, str) or encoding not in ENCODINGS:
            raise ProtocolError(f"encoding must be one of {', '.join(ENCODINGS)}, not {encoding!r}", INVALID_PAYLOAD)
        self.sample_rate = rate
        self.encoding = encoding
        self.words = bool(config.get("words", self.words))
        alternatives = config.get("max_alternatives", 0)
        if type(alternatives) is not int or not 0 <= alternatives <= MAX_ALTERNATIVES:
            message = f"max_alternatives must be a whole number from 0 to {MAX_ALTERNATIVES}, not {alternatives!r}"
            raise ProtocolError(message, INVALID_PAYLOAD)
        phrases = config.get("phrase_list", [])
        if not isinstance(phrases, list):
            raise ProtocolError(f"phrase_list must be a list of words or phrases, not {phrases!r}", INVALID_PAYLOAD)
        try:
            query = DecodingQuery(**{k: config[k] for k in DECODING_FIELDS if k in config}, hotwords=phrases)
            self.options = options_for(self.engine, query, alternatives)
        except ValidationError as error:
            raise ProtocolError(describe(error.errors()), INVALID_PAYLOAD) from None
        except InvalidOption as error:
            raise ProtocolError(str(error).replace("hotwords", "phrase_list"), INVALID_PAYLOAD) from None
        self.alternatives = alternatives

    async def audio(self, data: bytes) -> dict:
        if self.stream is None:
            self.stream = Stream(self.sample_rate, self.settings.stream_config)
        samples = self._samples(data)
        self.metrics.audio.labels("stream").inc(samples.numel() / self.sample_rate)
        closed = self.stream.feed(samples)
        if closed:
            self.partial = ""
            return await self._result(closed)
        if self.stream.partial_due() and self.engine.batcher.queue_depth < self.settings.max_queue:
            self.stream.mark_read()
            [transcript] = await self._read(self.stream.open_utterance(), partial=True)
            self.partial = transcript.text
        return {"partial": self.partial if self.stream.is_open else ""}

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
            raise ProtocolError(message, INVALID_PAYLOAD) from None

    async def flush(self) -> dict:
        """The result of the open utterance, if any (``{"text": ""}`` if none), and a fresh start."""
        utterance = self.stream.flush() if self.stream is not None else None
        self.partial = ""
        return await self._result([utterance] if utterance is not None else [])

    async def _result(self, utterances: list[Utterance]) -> dict:
        readings = await asyncio.gather(*map(self._read, utterances))
        if self.alternatives:
            return {"alternatives": [self._body(t) | {"confidence": round(t.confidence, 4)} for t in _joined(readings)]}
        return self._body(_joined(readings)[0])

    def _body(self, transcript: Transcript) -> dict:
        if not self.words or not transcript.words:
            return {"text": transcript.text}
        result = [
            {"conf": round(w.confidence, 4), "end": round(w.end, 3), "start": round(w.start, 3), "word": w.word}
            for w in transcript.words
        ]
        return {"result": result, "text": transcript.text}

    def _partial_options(self) -> BeamOptions | None:
        """The stream's options with one hypothesis and at most the partial beam (None: greedy)."""
        if self.options is None:
            return None
        narrow = self.settings.stream_partial_beam_size
        return replace(self.options, alternatives=1, beam_size=min(narrow, self.options.beam_size or narrow))

    async def _read(self, utterance: Utterance, partial: bool = False) -> list[Transcript]:
        """The utterance's transcripts (alternatives too, in a final read), timed from the start of the stream.

        A partial read carries on from what the previous one settled, so it costs the same late
        in a long utterance as early on (``ASR_STREAM_WINDOW_SECONDS``); its beam search is narrower
        (``ASR_STREAM_PARTIAL_BEAM_SIZE``), as its text is provisional and it runs every few hundred
        milliseconds. The final read is a full one, with the full beam: its text is the one that stays.
        """
        features = self.engine.transcriber.info.feature_config
        audio = utterance.audio
        if self.sample_rate != features.sample_rate:  # resampling takes milliseconds: not on the event loop
            audio = await asyncio.to_thread(prepare_waveform, audio, self.sample_rate, features)
        if partial:
            start, settled = self._settled or (None, Settled())
            read = StreamRead(audio, settled if start == utterance.start else Settled())
            transcript, settled = await self.engine.read_partial(read, self._partial_options())
            self._settled = (utterance.start, settled)
            transcripts = [transcript]
        else:
            transcripts = await self.engine.transcribe(audio, self.options)
            self._settled = None
        return [
            replace(
                t, words=[replace(w, start=w.start + utterance.start, end=w.end + utterance.start) for w in t.words]
            )
            for t in transcripts
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


def _command(text: str) -> dict:
    try:
        message = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProtocolError(f"text messages must be JSON ({error})", INVALID_PAYLOAD) from None
    except RecursionError:
        raise ProtocolError(
            "text messages must be JSON nested a few levels deep, not thousands", INVALID_PAYLOAD
        ) from None
    if not isinstance(message, dict) or not message.keys() & {"config", "eof", "reset"}:
        raise ProtocolError(
            'expected {"config": {...}}, {"eof" : 1} or {"reset" : 1}; audio goes in binary messages', UNSUPPORTED_DATA
        )
    return message


async def _receive_unless_draining(websocket: WebSocket, drain: Drain, idle_seconds: float) -> Message | None:
    """The client's next message, or None once the server has begun to shut down."""
    receive = asyncio.ensure_future(websocket.receive())
    draining = asyncio.ensure_future(drain.started.wait())
    try:
        await asyncio.wait({receive, draining}, timeout=idle_seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        draining.cancel()
        if not receive.done():
            receive.cancel()
    if receive.done():
        return receive.result()
    if draining.done():
        return None
    raise ProtocolError(f"no message for {idle_seconds:g} s (ASR_STREAM_IDLE_SECONDS)", POLICY_VIOLATION)


def _refusal(state: State) -> tuple[str, int] | None:
    """Why a new stream cannot start now, with its close code, if it cannot."""
    if state.engine is None:
        return "the model is not loaded yet; GET /ready says when it is", TRY_AGAIN_LATER
    if state.drain.draining:
        return "this server is shutting down; connect again", GOING_AWAY
    if state.open_streams >= state.settings.max_streams:
        limit = state.settings.max_streams
        return f"the server is at its limit of {limit} streams (ASR_MAX_STREAMS); try again shortly", TRY_AGAIN_LATER
    return None


@router.websocket("/v1/stream")
async def stream(websocket: WebSocket) -> None:
    await websocket.accept()
    state: State = websocket.app.state
    if refusal := _refusal(state):
        await websocket.send_json({"error": refusal[0]})
        await websocket.close(refusal[1])
        return
    settings: Settings = state.settings
    metrics: Metrics = state.metrics
    session = Session(state.engine, settings, metrics)
    state.open_streams += 1
    metrics.streams.inc()
    try:
        while True:
            message = await _receive_unless_draining(websocket, state.drain, settings.stream_idle_seconds)
            if message is None:
                await websocket.send_json(await session.flush())
                await websocket.close(GOING_AWAY)
                return
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await websocket.send_json(await session.audio(message["bytes"]))
                continue
            command = _command(message.get("text") or "")
            if "config" in command:
                session.configure(command["config"])
            elif "reset" in command:
                await websocket.send_json(await session.flush())
            else:
                await websocket.send_json(await session.flush())
                await websocket.close()
                return
    except ProtocolError as error:
        await websocket.send_json({"error": str(error)})
        await websocket.close(error.code)
    except WebSocketDisconnect:
        pass
    except Stopped as error:
        await websocket.send_json({"error": f"{error}; connect again"})
        await websocket.close(GOING_AWAY)
    except Exception as error:  # the stream ends with a reason; the server and other streams go on
        log.exception("stream failed")
        await websocket.send_json({"error": f"{type(error).__name__}: {error}"})
        await websocket.close(INTERNAL_ERROR)
    finally:
        state.open_streams -= 1
        metrics.streams.dec()

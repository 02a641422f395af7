"""Property-based fuzzing of what the world controls: audio file bytes and WebSocket messages.

Briefly here (the default profile); longer on demand:

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr.audio import AudioDecodeError, decode
from asr.features import FeatureConfig, prepare_waveform
from bench.serving import FORMATS, encode
from service.engine import Engine
from service.metrics import Metrics
from service.routers.stream import ProtocolError, Session, _command
from service.settings import Settings
from tests.conftest import speak

settings.register_profile("default", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=4000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

_SPEECH = prepare_waveform(*decode(speak("what time is it")), FeatureConfig(sample_rate=16000))
VALID = {kind: encode(_SPEECH[None], 16000, kind) for kind in ("wav", "flac", "mp3", "opus", "m4a")}
assert set(VALID) <= set(FORMATS)


def decodes_cleanly(data: bytes) -> None:
    """Either audio (finite float samples) or AudioDecodeError; nothing else, ever."""
    try:
        waveform, rate = decode(data)
    except AudioDecodeError:
        return
    assert waveform.dtype == torch.float32 and waveform.ndim == 2 and rate > 0
    assert torch.isfinite(waveform).all()


@given(st.binary(max_size=4096))
def test_decoding_arbitrary_bytes_gives_audio_or_a_decode_error(data):
    decodes_cleanly(data)


@st.composite
def damaged(draw) -> bytes:
    """A valid file with bytes overwritten, cut, or inserted."""
    data = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["overwrite", "truncate", "insert"]))
        chunk = draw(st.binary(min_size=1, max_size=64))
        if how == "overwrite":
            data[at : at + len(chunk)] = chunk
        elif how == "truncate":
            del data[at:]
        else:
            data[at:at] = chunk
        if not data:
            break
    return bytes(data)


@given(damaged())
def test_decoding_damaged_files_gives_audio_or_a_decode_error(data):
    decodes_cleanly(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@given(st.text(max_size=200) | json_values.map(json.dumps))
def test_any_text_message_is_a_command_or_a_protocol_error(text):
    try:
        command = _command(text)
    except ProtocolError as error:
        assert error.code in (1003, 1007)
        return
    assert command.keys() & {"config", "eof", "reset"}


@pytest.fixture(scope="module")
def engine():
    engine = Engine.load(Settings(device="cpu"), Metrics())
    yield engine
    engine.close()


@given(config=json_values | st.dictionaries(st.sampled_from(["sample_rate", "words", "encoding"]), json_values))
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_config_is_taken_or_refused_with_1007(engine, config):
    session = Session(engine, Settings(device="cpu"), Metrics())
    try:
        session.configure(config)
    except ProtocolError as error:
        assert error.code == 1007
        return
    assert 4000 <= session.sample_rate <= 192000 and session.encoding in ("pcm_s16le", "pcm_f32le")


@given(
    encoding=st.sampled_from(["pcm_s16le", "pcm_f32le"]),
    rate=st.sampled_from([8000, 16000, 44100]),
    messages=st.lists(st.binary(max_size=9000), min_size=1, max_size=6),
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_audio_bytes_get_one_reply_each_or_a_1007(engine, encoding, rate, messages):
    async def feed() -> list[dict]:
        session = Session(engine, Settings(device="cpu"), Metrics())
        session.configure({"sample_rate": rate, "encoding": encoding})
        return [await session.audio(message) for message in messages] + [await session.flush()]

    try:
        replies = asyncio.run(feed())
    except ProtocolError as error:
        assert encoding == "pcm_f32le" and error.code == 1007  # NaN or infinity in float audio
        return
    assert len(replies) == len(messages) + 1
    for reply in replies[:-1]:
        assert set(reply) in ({"partial"}, {"text"}, {"result", "text"})
    assert set(replies[-1]) in ({"text"}, {"result", "text"})

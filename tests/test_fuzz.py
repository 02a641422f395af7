"""Property-based fuzzing of what the world controls: audio file bytes and WebSocket messages.

Briefly and reproducibly here (the default profile draws the same examples every run, so CI cannot turn
red by chance); longer and freshly random on demand:

    HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import json
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asr.audio import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioDecodeError, decode
from asr.beam import MAX_HOTWORD_LETTERS, Beam, BeamDecoder
from asr.features import FeatureConfig, prepare_waveform
from asr.text import ALPHABET, NUM_CLASSES
from service.body import content_length_refusal
from service.engine import Engine
from service.limits import MAX_HOTWORDS
from service.metrics import Metrics
from service.request_options import InvalidOption, hotword_list
from service.settings import Settings
from service.vosk import ProtocolError, Session, parse_command
from tests.support.fake import FakeRecogniser
from tests.support.speech import FORMATS, encode, speak, wav_bytes

settings.register_profile(
    "default", max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
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


def test_an_m4a_naming_a_codec_ffmpeg_cannot_open_is_a_decode_error():
    """Found by the fuzz test: the AAC object type (0x40) in the esds box overwritten leaves PyAV a stream
    with no codec context, which used to escape as an AttributeError (a 500 in the service)."""
    data = bytearray(VALID["m4a"])
    at = data.find(b"esds") + 21
    assert data[at] == 0x40
    data[at] = 0x01
    with pytest.raises(AudioDecodeError, match="cannot be decoded"):
        decode(bytes(data))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


def _nest(depth: int, brackets: str) -> str:
    return brackets[0] * depth + brackets[1] * depth


nested = st.builds(_nest, st.integers(1, 200_000), st.sampled_from(["[]", "{}"]))


@given(st.text(max_size=200) | json_values.map(json.dumps) | nested)
def test_any_text_message_is_a_command_or_a_protocol_error(text):
    try:
        command = parse_command(text)
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
def test_any_config_is_taken_or_refused_with_1007(config):
    session = Session(FakeRecogniser(), Settings().stream)
    try:
        session.configure(config)
    except ProtocolError as error:
        assert error.code == 1007
        return
    assert 4000 <= session.sample_rate <= 192000 and session.encoding in ("pcm_s16le", "pcm_f32le")


@given(
    encoding=st.sampled_from(["pcm_s16le", "pcm_f32le"]),
    rate=st.integers(4000, 192000),
    messages=st.lists(st.binary(max_size=9000), min_size=1, max_size=6),
)
def test_any_audio_bytes_get_one_reply_each_or_a_1007(encoding, rate, messages):
    async def feed() -> list[dict]:
        session = Session(FakeRecogniser(), Settings().stream)
        session.configure({"sample_rate": rate, "encoding": encoding})
        return [(await session.audio(message)).wire() for message in messages] + [(await session.flush()).wire()]

    try:
        replies = asyncio.run(feed())
    except ProtocolError as error:
        assert encoding == "pcm_f32le" and error.code == 1007  # NaN or infinity in float audio
        return
    assert len(replies) == len(messages) + 1
    for reply in replies[:-1]:
        assert set(reply) in ({"partial"}, {"text"}, {"result", "text"})
    assert set(replies[-1]) in ({"text"}, {"result", "text"})


@given(
    channels=st.integers(1, 300),
    rate=st.integers(1, 400000),
    float_samples=st.booleans(),
    frames=st.integers(0, 64),
)
def test_any_channel_count_and_sample_rate_in_a_header_gives_audio_or_a_decode_error(
    channels, rate, float_samples, frames
):
    """A 60-byte WAV header of 8 channels crashed the process; one at 1 Hz made a kilobyte last ten minutes."""
    data = wav_bytes(np.random.default_rng(0).uniform(-1, 1, (frames, channels)) * 1e4, rate, float_samples)
    try:
        waveform, got = decode(data)
    except AudioDecodeError:
        return
    assert MIN_SAMPLE_RATE <= got == rate <= MAX_SAMPLE_RATE and waveform.shape == (channels, frames) != (1, 0)
    assert channels <= MAX_CHANNELS and waveform.abs().max() <= 1.0


@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=400))
def test_any_finite_float_samples_decode_within_full_scale(samples):
    waveform, _ = decode(wav_bytes(np.array(samples)[:, None], 16000, float_samples=True))
    assert waveform.abs().max() <= 1.0 and torch.isfinite(prepare_waveform(waveform, 16000)).all()


@given(
    st.lists(
        st.builds(lambda n, piece: (piece * (n // len(piece) + 1))[:n], st.integers(0, 120000), st.text(min_size=1)),
        max_size=5,
    )
)
def test_hotwords_of_any_size_are_bounded_or_refused_by_name(phrases):
    """One hotword of 100,000 letters reached the decoder's recursion and killed the process."""
    try:
        words = hotword_list(phrases)
    except InvalidOption as error:
        assert error.param == "hotwords"
        return
    assert len(words) <= MAX_HOTWORDS and all(len(w) <= MAX_HOTWORD_LETTERS for w in words)


@given(st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz'", min_size=1, max_size=MAX_HOTWORD_LETTERS), max_size=8))
def test_the_decoder_takes_any_hotwords_the_service_lets_through(hotwords):
    decoder = BeamDecoder(None, vocabulary=("the", "cat"))
    log_probs = torch.log_softmax(torch.randn(40, NUM_CLASSES), dim=-1)
    [transcript] = decoder.decode(log_probs, 0.02, options=Beam(hotwords=tuple(hotwords)))
    assert set(transcript.text) <= set(ALPHABET)


@given(
    rate=st.integers(4000, 192000),
    samples=st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=1, max_size=3000),
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=30)
def test_finite_float_audio_of_any_size_gets_replies_never_an_error(engine, rate, samples):
    """Samples near 1e30 overflowed the features; the int8 model then failed every stream batched with it."""

    async def feed() -> list[dict]:
        session = Session(engine, Settings().stream)
        session.configure({"sample_rate": rate, "encoding": "pcm_f32le"})
        audio = np.array(samples, dtype=np.float32).tobytes() * 8
        return [(await session.audio(audio)).wire(), (await session.flush()).wire()]

    partial, final = asyncio.run(feed())
    assert set(partial) <= {"partial", "text", "result"} and "text" in final


@given(
    st.none()
    | st.text(max_size=6000)
    | st.text("0123456789", max_size=6000)
    | st.text("0", max_size=6000).map(lambda zeros: zeros + "7")
)
def test_any_content_length_is_accepted_or_refused_with_a_4xx(declared):
    """5,001 digits made Python's int() raise: a 500 on every route."""
    refusal = content_length_refusal(declared, 1024**3)
    assert refusal is None or refusal.status in (400, 413)

"""The Vosk protocol as a pure module: a session's replies to each message, against a recogniser without a model."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
import torch

from asr.beam import Beam
from asr.decoding import Greedy
from service.settings import Settings
from service.vosk import ProtocolError, Session, VoskConfig, parse_command
from tests.support.fake import FakeRecogniser

CONFIG = Settings(stream_vad="energy", stream_sample_rate=16000).stream
"""The session's protocol on 16 kHz tones, which the energy detector takes for speech and Silero's network does
not."""
RATE = 16000


def tone(seconds: float, rate: int = RATE) -> torch.Tensor:
    t = torch.arange(round(seconds * rate)) / rate
    return 0.3 * torch.sin(2 * torch.pi * 220 * t)


def pcm16(audio: torch.Tensor) -> bytes:
    return (audio * 32767).round().to(torch.int16).numpy().tobytes()


def utterances(*seconds: float, rate: int = RATE) -> torch.Tensor:
    """Half a second of silence, then sounds of these lengths, each followed by a second of silence."""
    parts = [torch.zeros(rate // 2)]
    for length in seconds:
        parts += [tone(length, rate), torch.zeros(rate)]
    return torch.cat(parts)


def talk(session: Session, data: bytes, chunk: int = 3200) -> list[dict]:
    async def run() -> list[dict]:
        return [(await session.audio(data[i : i + chunk])).wire() for i in range(0, len(data), chunk)]

    return asyncio.run(run())


def flush(session: Session) -> dict:
    return asyncio.run(session.flush()).wire()


def test_each_audio_message_gets_one_reply_partials_while_speech_goes_on_and_a_timed_result_at_its_end():
    fake = FakeRecogniser(text="turn it off")
    session = Session(fake, CONFIG)
    replies = talk(session, pcm16(utterances(2.0, 2.0)))
    assert len(replies) == -(-len(pcm16(utterances(2.0, 2.0))) // 3200)
    results = [r for r in replies if "result" in r]
    assert [r["text"] for r in results] == ["turn it off", "turn it off"]
    assert all(set(r) in ({"partial"}, {"result", "text"}) for r in replies)
    partials = [r["partial"] for r in replies if "partial" in r]
    assert "turn it off" in partials and all("turn it off".startswith(p) for p in partials)
    # Word times run from the start of the stream: the second utterance starts 3 s after the first.
    first, second = (r["result"][0]["start"] for r in results)
    assert first == pytest.approx(0.5, abs=0.25) and second - first == pytest.approx(3.0, abs=0.05)
    assert all(list(w) == ["conf", "end", "start", "word"] for r in results for w in r["result"])
    assert flush(session) == {"text": ""}


def test_a_sample_split_across_messages_waits_for_the_next_one():
    whole = Session(FakeRecogniser(), CONFIG)
    odd = Session(FakeRecogniser(), CONFIG)
    data = pcm16(utterances(2.0))
    assert [r for r in talk(whole, data, 3200) if "result" in r] == [r for r in talk(odd, data, 3001) if "result" in r]


def test_without_words_results_carry_only_text_and_reset_flushes_the_open_utterance():
    session = Session(FakeRecogniser(), CONFIG)
    session.configure({"words": False})
    talk(session, pcm16(torch.cat([torch.zeros(8000), tone(1.5)])))
    assert flush(session) == {"text": "open the garage door please"}
    assert flush(session) == {"text": ""}


def test_max_alternatives_gives_that_many_with_confidences():
    session = Session(FakeRecogniser(), CONFIG)
    session.configure({"max_alternatives": 3})
    [result] = [r for r in talk(session, pcm16(utterances(2.0))) if "alternatives" in r]
    assert [list(a) for a in result["alternatives"]] == [["result", "text", "confidence"]] * 3
    assert [a["confidence"] for a in result["alternatives"]] == [0.3333] * 3


@pytest.mark.parametrize(
    ("config", "taken"),
    [
        ({"max_alternatives": 20}, (None, 10)),  # Vosk's own test_alternatives.py sends 20
        ({"max_alternatives": "2"}, (None, 2)),
        ({"max_alternatives": 2.0}, (None, 2)),
        ({"sample_rate": "16000"}, (16000, 0)),
        ({"sample_rate": 8000.0, "max_alternatives": " 3 "}, (8000, 3)),
    ],
)
def test_numbers_are_read_as_vosk_reads_them_and_alternatives_capped(config, taken):
    session = Session(FakeRecogniser(), CONFIG)
    session.configure(config)
    rate, alternatives = taken
    assert (session.sample_rate, session.alternatives) == (rate or CONFIG.sample_rate, alternatives)


def test_a_config_sets_rate_encoding_and_decoding_and_later_fields_keep_earlier_ones():
    session = Session(FakeRecogniser(), CONFIG)
    session.configure({"sample_rate": 8000.0, "encoding": "pcm_f32le", "hotwords": ["kubernetes"]})
    assert (session.sample_rate, session.encoding) == (8000, "pcm_f32le")
    assert session.decoding == Beam(hotwords=("kubernetes",))
    session.configure({"decoder": "greedy"})
    assert (session.sample_rate, session.encoding, session.decoding) == (8000, "pcm_f32le", Greedy())
    data = utterances(2.0, rate=8000).numpy().astype(np.float32).tobytes()
    assert [r["text"] for r in talk(session, data, 6400) if "result" in r] == ["open the garage door please"]


def test_partial_reads_use_the_narrow_beam_and_finals_the_full_one():
    session = Session(FakeRecogniser(), CONFIG)
    session.configure({"beam_size": 200})
    assert session._partial_decoding() == Beam(beam_size=CONFIG.partial_beam_size)
    assert session.decoding == Beam(beam_size=200)


def test_partials_are_skipped_while_the_model_is_busy_but_results_are_not():
    session = Session(FakeRecogniser(), CONFIG, may_read_partial=lambda: False)
    replies = talk(session, pcm16(utterances(2.0)))
    assert {r["partial"] for r in replies if "partial" in r} == {""}
    assert [r["text"] for r in replies if "result" in r] == ["open the garage door please"]


def test_every_second_of_audio_is_counted():
    heard: list[float] = []
    session = Session(FakeRecogniser(), CONFIG, on_audio=heard.append)
    talk(session, pcm16(torch.zeros(RATE * 2)), 3200)
    assert sum(heard) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"sample_rate": 100}, "sample_rate must be a number from 4000 to 192000 Hz, not 100"),
        ({"sample_rate": None}, "sample_rate must be a number"),
        ({"encoding": "mulaw"}, "encoding must be one of pcm_s16le, pcm_f32le, not 'mulaw'"),
        ({"max_alternatives": -1}, "max_alternatives must be a whole number from 0 up, not -1"),
        ({"max_alternatives": "3.5"}, "max_alternatives must be a whole number from 0 up, not '3.5'"),
        ({"max_alternatives": None}, "max_alternatives must be a whole number"),
        ({"sample_rate": "16000.0"}, "sample_rate must be a number from 4000 to 192000 Hz, not '16000.0'"),
        ({"phrase_list": "kubernetes"}, "phrase_list must be a list of words or phrases, not 'kubernetes'"),
        ({"phrase_list": ["a" * 100_000]}, "phrase_list: at most 8192 characters in all"),
        ({"phrase_list": ["a" * 60]}, "phrase_list: aaaaaaaaaaaaaaaaaaaa... is longer than 48 letters"),
        ({"beam_size": 0}, "beam_size: Input should be greater than or equal to 1"),
        ([1, 2], 'config must be an object, e.g. {"config": {"sample_rate": 16000}}'),
    ],
)
def test_a_config_that_cannot_be_taken_is_a_1007_naming_the_field(config, message):
    with pytest.raises(ProtocolError) as refused:
        Session(FakeRecogniser(), CONFIG).configure(config)
    assert refused.value.code == 1007 and str(refused.value).startswith(message)


def test_beam_options_on_a_greedy_server_are_refused_and_say_why():
    session = Session(FakeRecogniser(decoding=Greedy()), CONFIG)
    with pytest.raises(ProtocolError, match=r"phrase_list: this server decodes greedily.*\(ASR_LM\)"):
        session.configure({"phrase_list": ["kubernetes"]})
    session.configure({"sample_rate": 8000})
    assert session.decoding == Greedy()


def test_a_config_after_audio_changes_the_decoding_at_once_and_keeps_what_it_does_not_name():
    session = Session(FakeRecogniser(), CONFIG)
    session.configure({"sample_rate": 16000.0, "phrase_list": ["Turn it OFF", "[unk]"], "hotwords": ["kubernetes"]})
    talk(session, pcm16(torch.cat([torch.zeros(8000), tone(1.5)])))  # an utterance is open
    session.configure({"max_alternatives": 2, "words": False})
    assert session.decoding == Beam(hotwords=("kubernetes",), alternatives=2, grammar=("turn it off", "[unk]"))
    assert session.sample_rate == 16000
    assert flush(session) == {"alternatives": [{"text": "open the garage door please", "confidence": 0.5}] * 2}


def test_a_new_rate_mid_utterance_ends_it_there_and_the_stream_goes_on_at_the_new_rate():
    """The open utterance's result comes with the reply to the first message in the new format; times run on."""
    session = Session(FakeRecogniser(), CONFIG)
    assert not [r for r in talk(session, pcm16(torch.cat([torch.zeros(8000), tone(1.5)]))) if "result" in r]
    session.configure({"sample_rate": 8000})
    replies = talk(session, pcm16(utterances(1.5, rate=8000)), 1600)
    cut, later = [r["result"][0]["start"] for r in replies if "result" in r]
    assert "result" in replies[0]
    assert later - cut == pytest.approx(2.0, abs=0.05)  # the tones start at 0.5 s (16 kHz) and 2.0 + 0.5 s (8 kHz)
    session.configure({"encoding": "pcm_f32le"})  # between utterances: nothing to end
    assert flush(session) == {"text": ""}


def test_a_config_after_a_reset_applies_to_the_next_utterance():
    session = Session(FakeRecogniser(), CONFIG)
    talk(session, pcm16(torch.cat([torch.zeros(8000), tone(1.5)])))
    first = flush(session)
    session.configure({"sample_rate": 8000, "encoding": "pcm_f32le"})
    [second] = [r for r in talk(session, utterances(1.5, rate=8000).numpy().tobytes(), 3200) if "result" in r]
    assert first["text"] == second["text"] == "open the garage door please"
    assert second["result"][0]["start"] - first["result"][0]["start"] == pytest.approx(2.0, abs=0.05)


def test_nan_in_float_audio_is_a_1007():
    session = Session(FakeRecogniser(), CONFIG)
    session.configure({"encoding": "pcm_f32le"})
    with pytest.raises(ProtocolError, match="pcm_f32le audio must hold finite samples") as refused:
        talk(session, np.array([0.1, np.nan] * 100, dtype=np.float32).tobytes())
    assert refused.value.code == 1007


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ('{"transcribe": true}', 1003, 'expected {"config": {...}}'),
        ("{not json", 1007, "text messages must be JSON"),
        ("[" * 100_000, 1007, "text messages must be JSON nested a few levels deep"),
    ],
)
def test_a_text_message_that_is_no_command_is_refused_with_its_code(text, code, message):
    with pytest.raises(ProtocolError) as refused:
        parse_command(text)
    assert refused.value.code == code and str(refused.value).startswith(message)


def test_commands_parse_as_vosk_sends_them():
    assert parse_command('{"eof" : 1}') == {"eof": 1}
    assert parse_command(json.dumps({"config": {"sample_rate": 8000}})) == {"config": {"sample_rate": 8000}}
    assert VoskConfig.parse({"sample_rate": 8000, "unknown": 1}).sample_rate == 8000

"""The OpenAI-compatible endpoints, driven by OpenAI's own Python client against the real server."""

from __future__ import annotations

import re

import openai
import pytest

from asr.audio import decode
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.language_model import DEFAULT_LM
from asr.transcriber import Transcriber
from tests.support.speech import long_wav, speak

SENTENCE = "please call alice on monday morning"


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    url, _ = server
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def speech() -> bytes:
    return speak(SENTENCE, voice="en-us", rate=150)


@pytest.fixture(scope="module")
def expected(speech):
    [transcript] = Transcriber.from_checkpoint(DEFAULT_CHECKPOINT, "cpu", "fp32", DEFAULT_LM).transcribe(
        [decode(speech)]
    )
    return transcript


def test_json_is_the_default_and_carries_the_text(client, speech, expected):
    result = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", speech))
    assert result.text == expected.text
    assert result.usage.type == "duration" and result.usage.seconds == 3


def test_the_loaded_model_is_listed_and_answers_by_its_own_name(client, speech, expected):
    [model] = client.models.list().data
    assert (model.id, model.object, model.owned_by) == ("default", "model", "asr") and model.created > 1.7e9
    assert client.models.retrieve("default").id == "default"
    result = client.audio.transcriptions.create(model=model.id, file=("speech.wav", speech), language="en")
    assert result.text == expected.text


def test_text_srt_and_vtt(client, speech, expected):
    text = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", speech), response_format="text")
    assert text == expected.text + "\n"
    srt = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", speech), response_format="srt")
    start, end = expected.words[0].start, expected.words[-1].end
    assert re.fullmatch(r"1\n00:00:00,\d{3} --> 00:00:0\d,\d{3}\n" + re.escape(expected.text) + r"\n\n", srt)
    assert (
        srt.split("\n")[1] == f"00:00:00,{round(start * 1000):03d} --> 00:00:0{int(end)},{round(end * 1000) % 1000:03d}"
    )
    vtt = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", speech), response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.") and vtt.endswith(expected.text + "\n\n")


def test_verbose_json_with_word_and_segment_timestamps(client, speech, expected):
    result = client.audio.transcriptions.create(
        model="whisper-1",
        file=("speech.wav", speech),
        response_format="verbose_json",
        timestamp_granularities=["word", "segment"],
    )
    assert result.text == expected.text and result.language == "english"
    assert result.duration == pytest.approx(decode(speech)[0].shape[-1] / 22050, abs=1e-3)
    assert [(w.word, w.start, w.end) for w in result.words] == [
        (w.word, round(w.start, 3), round(w.end, 3)) for w in expected.words
    ]
    [segment] = result.segments
    assert (segment.id, segment.text, segment.start, segment.end) == (
        0,
        expected.text,
        round(expected.words[0].start, 3),
        round(expected.words[-1].end, 3),
    )
    assert segment.avg_logprob < 0 and segment.compression_ratio > 0


def test_verbose_json_gives_segments_only_unless_words_are_asked_for(client, speech):
    result = client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", speech), response_format="verbose_json"
    )
    assert result.segments and result.words is None
    words_only = client.audio.transcriptions.create(
        model="whisper-1", file=("a.wav", speech), response_format="verbose_json", timestamp_granularities=["word"]
    )
    assert words_only.words and words_only.segments is None


def test_harmless_options_are_accepted_and_ignored(client, speech, expected):
    result = client.audio.transcriptions.create(
        model="whisper-1",
        file=("speech.wav", speech),
        prompt="a phone call",
        temperature=0.4,
        extra_body={"chunking_strategy": "auto", "some_future_option": "1"},
    )
    assert result.text == expected.text


def test_a_translation_into_english_is_the_transcript(client, speech, expected):
    assert client.audio.translations.create(model="whisper-1", file=("speech.wav", speech)).text == expected.text


def test_logprobs_spell_the_text_from_the_beam_path(client, speech, expected):
    result = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("s.wav", speech), include=["logprobs"])
    assert "".join(t.token for t in result.logprobs) == result.text == expected.text
    assert all(t.logprob <= 0 for t in result.logprobs) and sum(t.logprob for t in result.logprobs) > -10


def test_a_long_file_streams_a_delta_per_window_and_ends_with_the_whole_text(client):
    audio, _ = long_wav(50)  # 20 s windows advancing by 16 s: four windows
    whole = client.audio.transcriptions.create(model="whisper-1", file=("long.wav", audio)).text
    events = list(client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("long.wav", audio), stream=True))
    *deltas, done = events
    assert len(deltas) >= 3 and all(d.type == "transcript.text.delta" for d in deltas)
    assert "".join(d.delta for d in deltas) == done.text == whole

"""The REST API's shapes, options and errors, in process, against a recogniser without a model.

What only the real model shows (that the words come out right, through every format) is in test_service.py,
test_openai_api.py and test_decoding_api.py; here, what the service decides around recognition.
"""

from __future__ import annotations

import json
import math

import openai
import pytest
import torch

from asr.audio import decode
from asr.decoding import Greedy
from asr.text import encode
from asr.transcript import Word, segment
from service.openai_formats import VerboseSegment
from service.settings import Settings
from tests.support.fake import FakeRecogniser
from tests.support.servers import in_process
from tests.support.speech import speak, wav_bytes

TEXT = "open the garage door please"


@pytest.fixture(scope="module")
def client():
    with in_process(FakeRecogniser(text=TEXT)) as client:
        yield client


@pytest.fixture(scope="module")
def wav() -> bytes:
    return speak(TEXT)


@pytest.fixture(scope="module")
def openai_client(client) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{client.base_url}/v1", api_key="unused", http_client=client, max_retries=0)


def test_the_native_answer_has_text_words_segments_and_the_model(client, wav):
    body = client.post("/v1/transcribe", files={"file": ("a.wav", wav)}).json()
    assert body["text"] == TEXT and body["model"] == "fake" and body["processing_seconds"] > 0
    words = body["words"]
    assert [w["word"] for w in words] == TEXT.split()
    assert all(
        0 <= w["start"] < w["end"] <= body["duration"] and w["confidence"] == round(0.9 ** len(w["word"]), 4)
        for w in words
    )
    assert body["segments"] == [{"start": words[0]["start"], "end": words[-1]["end"], "text": TEXT}]


@pytest.mark.parametrize(
    ("query", "status", "names"),
    [
        ({"beam_size": 0}, 422, "beam_size"),
        ({"beam_size": 5000}, 422, "beam_size"),
        ({"lm_weight": -1}, 422, "lm_weight"),
        ({"decoder": "viterbi"}, 422, "decoder"),
        ({"hotwords": "!?"}, 400, "hotwords"),
        ({"hotwords": ",".join(f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(101))}, 400, "at most 100"),
        ({"decoder": "greedy", "hotwords": "kubernetes"}, 400, "needs decoder=beam"),
    ],
)
def test_bad_options_are_refused_by_name(client, wav, query, status, names):
    response = client.post("/v1/transcribe", params=query, content=wav)
    assert response.status_code == status, response.text
    assert names in response.json()["error"]["message"]


def test_a_server_without_an_lm_decodes_greedily_and_refuses_beam_options(wav):
    assert Settings(lm="").decoding == Greedy()
    with in_process(FakeRecogniser(text=TEXT, decoding=Greedy())) as client:
        assert client.post("/v1/transcribe", content=wav).json()["text"] == TEXT
        refused = client.post("/v1/transcribe", params={"hotwords": "kubernetes"}, content=wav)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "hotwords"
        assert "without a language model" in refused.json()["error"]["message"]
        with client.websocket_connect("/v1/stream") as ws:
            ws.send_text('{"config": {"phrase_list": ["kubernetes"]}}')
            assert "ASR_LM" in ws.receive_json()["error"]
            assert ws.receive()["code"] == 1007


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"model": "whisper-large-v3"}, "model: no model 'whisper-large-v3' here; use 'fake' (GET /v1/models)"),
        ({"language": "fr"}, "language: the model recognises English only ('en'), not 'fr'"),
        ({"response_format": "diarized_json"},
         "response_format: 'diarized_json' is not one of json, text, srt, vtt, verbose_json"),
        ({"temperature": 1.5}, "temperature: must be between 0 and 1, not 1.5"),
        ({"timestamp_granularities": ["word"]}, "timestamp_granularities: needs response_format verbose_json"),
    ],
)  # fmt: skip
def test_openai_options_that_cannot_be_honoured_are_a_400_naming_them(openai_client, wav, options, message):
    with pytest.raises(openai.BadRequestError) as error:
        openai_client.audio.transcriptions.create(**{"model": "whisper-1", "file": ("a.wav", wav), **options})
    assert error.value.status_code == 400
    param = message.split(":")[0]
    assert error.value.body == {"code": f"invalid_{param}", "message": message, "type": "invalid_request_error",
                                "param": param}  # fmt: skip


def test_language_tags_that_mean_english_are_taken(openai_client, wav):
    for language in ("en", "EN-us", "en_GB", "eng", "English"):
        result = openai_client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav), language=language)
        assert result.text == TEXT
    with pytest.raises(openai.BadRequestError, match="not 'fr-FR'"):
        openai_client.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav), language="fr-FR")


def test_a_translation_of_english_speech_is_its_transcript_in_openai_translation_shapes(openai_client, wav):
    translate = openai_client.audio.translations.create
    assert translate(model="whisper-1", file=("a.wav", wav)).model_dump(exclude_none=True) == {"text": TEXT}
    assert translate(model="whisper-1", file=("a.wav", wav), response_format="text") == TEXT + "\n"
    verbose = translate(model="whisper-1", file=("a.wav", wav), response_format="verbose_json")
    assert (verbose.model_extra["task"], verbose.language, verbose.text) == ("translate", "english", TEXT)
    assert [s.text for s in verbose.segments] == [TEXT]
    for options, param in [({"model": "whisper-9"}, "model"), ({"extra_body": {"language": "de"}}, "language")]:
        with pytest.raises(openai.BadRequestError) as error:
            translate(**{"model": "whisper-1", "file": ("a.wav", wav), **options})
        assert error.value.body["param"] == param


def test_logprobs_give_each_character_and_verbose_json_the_tokens_seek_and_no_speech_chance(openai_client, wav):
    create = openai_client.audio.transcriptions.create
    result = create(model="gpt-4o-transcribe", file=("a.wav", wav), include=["logprobs"])
    assert "".join(t.token for t in result.logprobs) == TEXT  # the fake's every symbol at 0.9
    assert [t.logprob for t in result.logprobs] == pytest.approx([math.log(0.9)] * len(TEXT), abs=1e-6)
    assert result.logprobs[0].bytes == list(TEXT[0].encode())
    assert create(model="whisper-1", file=("a.wav", wav)).logprobs is None
    with pytest.raises(openai.BadRequestError, match="include: logprobs need response_format json"):
        create(model="whisper-1", file=("a.wav", wav), include=["logprobs"], response_format="text")
    verbose = create(model="whisper-1", file=("a.wav", wav), response_format="verbose_json")
    [part] = verbose.segments
    assert part.tokens == encode(TEXT) and part.seek == round(part.start * 100)
    assert part.no_speech_prob == 0.0  # 22 letters, each at 0.9


def test_no_speech_chance_is_that_of_every_letter_being_something_else():
    unsure = [
        Word("a", 0.0, 0.1, 0.5, (math.log(0.5),)),
        Word("ok", 0.2, 0.3, 0.4, (math.log(0.8), math.log(0.5)), 0.0),
    ]
    [part] = segment(unsure)
    assert VerboseSegment.of(0, part).no_speech_prob == pytest.approx(0.5 * 0.2 * 0.5)


def test_openai_formats_hold_the_same_words(openai_client, wav):
    create = openai_client.audio.transcriptions.create
    verbose = create(model="whisper-1", file=("a.wav", wav), response_format="verbose_json",
                     timestamp_granularities=["word", "segment"])  # fmt: skip
    assert (verbose.task, verbose.language, verbose.text) == ("transcribe", "english", TEXT)
    [segment] = verbose.segments
    start, end = verbose.words[0].start, verbose.words[-1].end
    assert (segment.id, segment.seek, segment.start, segment.end, segment.text) == (0, 0, start, end, TEXT)
    assert segment.avg_logprob == pytest.approx(
        math.log(0.9) * len(TEXT.replace(" ", "")) / len(TEXT.split()), abs=1e-4
    )
    assert create(model="whisper-1", file=("a.wav", wav), response_format="text") == TEXT + "\n"
    srt = create(model="whisper-1", file=("a.wav", wav), response_format="srt")
    assert (
        srt == f"1\n00:00:00,{round(start * 1000):03d} --> 00:00:0{int(end)},{round(end * 1000) % 1000:03d}\n{TEXT}\n\n"
    )
    vtt = create(model="whisper-1", file=("a.wav", wav), response_format="vtt")
    assert vtt == srt.replace("1\n", "WEBVTT\n\n", 1).replace(",", ".")
    plain = create(model="whisper-1", file=("a.wav", wav))
    waveform, rate = decode(wav)
    assert plain.text == TEXT and plain.usage.seconds == math.ceil(waveform.shape[-1] / rate)


def test_the_model_list_names_the_recogniser(openai_client):
    [model] = openai_client.models.list().data
    assert (model.id, model.object, model.owned_by, model.created) == ("fake", "model", "asr", 1_700_000_000)
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("whisper-1")


def tone(seconds: float, rate: int = 16000) -> torch.Tensor:
    return 0.3 * torch.sin(2 * torch.pi * 220 * torch.arange(round(seconds * rate)) / rate)


def streamed(openai_client, audio: bytes, **options) -> list:
    create = openai_client.audio.transcriptions.create
    return list(create(model="gpt-4o-transcribe", file=("a.wav", audio), stream=True, **options))


def test_stream_true_sends_each_window_as_a_delta_then_the_whole_text():
    """Three sayings 4 s apart in 3 s windows, 12 s in all: three deltas, which add up to the done event's text."""
    tones = torch.cat([part for _ in range(3) for part in (torch.zeros(8000), tone(1.5), torch.zeros(32000))])
    with in_process(FakeRecogniser(text="open the door"), window_seconds=3, window_overlap_seconds=1) as client:
        openai_client = openai.OpenAI(base_url=f"{client.base_url}/v1", api_key="-", http_client=client)
        *deltas, done = streamed(
            openai_client, wav_bytes((tones[:, None] * 32767).short().numpy(), 16000), include=["logprobs"]
        )
    assert [d.type for d in deltas] == ["transcript.text.delta"] * 3 and done.type == "transcript.text.done"
    assert "".join(d.delta for d in deltas) == done.text == " ".join(["open the door"] * 3)
    assert ["".join(t.token for t in d.logprobs) for d in deltas] == [d.delta for d in deltas]
    assert "".join(t.token for t in done.logprobs) == done.text and done.usage.seconds == 12


def test_stream_true_is_ignored_for_whisper_1_and_refused_for_caption_formats(client, openai_client, wav):
    """As OpenAI does: whisper-1 answers whole (so its streaming client is not used here)."""
    whole = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav)},
                        data={"model": "whisper-1", "stream": "true"})  # fmt: skip
    assert whole.json()["text"] == TEXT and whole.headers["content-type"] == "application/json"
    with pytest.raises(openai.BadRequestError, match="stream: streamed text comes as events, not as srt"):
        streamed(openai_client, wav, response_format="srt")


class FailsAfterOneRead(FakeRecogniser):
    async def log_probs(self, waveform: torch.Tensor) -> torch.Tensor:
        if self.reads:
            raise RuntimeError("the model fell over")
        return await super().log_probs(waveform)


def test_a_streamed_file_that_fails_before_its_first_words_is_a_4xx_and_after_them_an_error_event(wav):
    speech = torch.cat([decode(wav)[0].mean(0)] * 4)
    settings = {"window_seconds": 2, "window_overlap_seconds": 0.5, "windows_in_flight": 1}
    with in_process(FailsAfterOneRead(text=TEXT), **settings) as client:
        openai_client = openai.OpenAI(base_url=f"{client.base_url}/v1", api_key="-", http_client=client)
        with pytest.raises(openai.BadRequestError, match="not a supported audio file"):
            streamed(openai_client, b"not audio" * 20)
        long = wav_bytes((speech[:, None] * 32767).short().numpy(), 16000)
        events = client.post("/v1/audio/transcriptions", files={"file": ("a.wav", long)},
                             data={"model": "gpt-4o-transcribe", "stream": "true"})  # fmt: skip
    assert events.status_code == 200 and events.headers["content-type"].startswith("text/event-stream")
    *deltas, last = [json.loads(line[6:]) for line in events.text.splitlines() if line.startswith("data: ")]
    assert deltas and all(d["type"] == "transcript.text.delta" for d in deltas)
    assert last["type"] == "error" and last["error"]["code"] == "internal_error"
    assert "RuntimeError: the model fell over" in last["error"]["message"]


def test_undecodable_and_too_long_audio_are_named_4xx(wav):
    with in_process(FakeRecogniser(text=TEXT), max_duration_seconds=1) as client:
        refused = client.post("/v1/transcribe", files={"file": ("notes.wav", b"not audio" * 20)})
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_audio"
        assert refused.json()["error"]["message"].startswith("notes.wav: ")
        long = client.post("/v1/transcribe", files={"file": ("a.wav", wav)})
        assert long.status_code == 413 and long.json()["error"]["code"] == "audio_too_long"
        assert long.json()["error"]["message"].startswith("a.wav: ") and "ASR_MAX_DURATION_SECONDS" in long.text

"""Decoding options end to end, against the real server: the REST query, OpenAI's form, the Vosk config."""

from __future__ import annotations

import contextlib
import json

import httpx
import openai
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from asr.audio import decode
from asr.beam import DEFAULT_LM, BeamOptions
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.transcriber import Transcriber
from bench.serving import serve
from tests.conftest import speak
from tests.test_stream_api import pcm, session, ws_url

RARE = "send the files to kubernetes now"
"""A word no fortune holds: greedy and the LM alone spell it as they hear it; boosted, it comes out right."""


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber.from_checkpoint(DEFAULT_CHECKPOINT, "cpu", "fp32", DEFAULT_LM)


@pytest.fixture(scope="module")
def rare() -> bytes:
    return speak(RARE)


def post(url: str, audio: bytes, **query: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/transcribe", params=query, content=audio, timeout=60)


def test_beam_by_default_greedy_on_request_and_both_match_in_process(server, transcriber, rare):
    url, _ = server
    beam, greedy = post(url, rare).json(), post(url, rare, decoder="greedy").json()
    log_probs = transcriber.log_probs([decode(rare)])[0]
    duration = beam["duration"]
    assert beam["text"] == transcriber.decode(log_probs, duration)[0].text
    assert greedy["text"] == transcriber.decode(log_probs, duration, None)[0].text
    assert beam["text"] != greedy["text"]
    assert "kubernetes" not in beam["text"] and "kubernetes" not in greedy["text"]
    assert beam["text"].startswith("send the files to")  # every word of the beam's is a real one
    wide = post(url, rare, beam_size=256, lm_weight=1.0, word_score=1.0).json()
    expected = transcriber.decode(log_probs, duration, BeamOptions(beam_size=256, alpha=1.0, beta=1.0))[0]
    assert wide["text"] == expected.text


def test_hotwords_bring_out_a_rare_word(server, rare):
    url, _ = server
    boosted = post(url, rare, hotwords="kubernetes").json()
    assert boosted["text"] == RARE
    [word] = [w for w in boosted["words"] if w["word"] == "kubernetes"]
    assert 0 < word["confidence"] <= 1 and word["start"] < word["end"]
    assert post(url, rare, hotwords=["cluster", "kubernetes, docker"]).json()["text"] == RARE


def test_the_openai_client_sends_hotwords_in_its_extra_body(server, rare):
    url, _ = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
    plain = client.audio.transcriptions.create(model="whisper-1", file=("rare.wav", rare))
    boosted = client.audio.transcriptions.create(
        model="whisper-1", file=("rare.wav", rare), extra_body={"hotwords": "kubernetes"}
    )
    assert "kubernetes" not in plain.text and boosted.text == RARE
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="whisper-1", file=("rare.wav", rare), extra_body={"hotwords": "!?"})
    assert refused.value.body["param"] == "hotwords"


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
def test_bad_options_are_refused_by_name(server, rare, query, status, names):
    url, _ = server
    response = post(url, rare, **query)
    assert response.status_code == status, response.text
    assert names in response.json()["error"]["message"]


def test_streams_take_phrase_list_and_give_alternatives(server):
    audio, _ = pcm(16000, sentences=[RARE])
    replies = {}
    boosted_config = {"phrase_list": ["kubernetes"], "hotword_boost": 8, "max_alternatives": 3}
    for name, config in {"plain": {}, "boosted": boosted_config}.items():
        with connect(ws_url(server)) as ws:
            ws.send(json.dumps({"config": {"sample_rate": 16000, **config}}))
            replies[name] = [*session(ws, audio, 6400), json.loads(ws.send('{"eof" : 1}') or ws.recv(timeout=30))]
    [plain] = [r for r in replies["plain"] if r.get("text")]
    [boosted] = [r for r in replies["boosted"] if r.get("alternatives") and r["alternatives"][0]["text"]]
    assert "kubernetes" not in plain["text"]
    alternatives = boosted["alternatives"]
    assert alternatives[0]["text"] == RARE and 1 <= len(alternatives) <= 3
    assert len({a["text"] for a in alternatives}) == len(alternatives)
    confidences = [a["confidence"] for a in alternatives]
    assert confidences == sorted(confidences, reverse=True) and sum(confidences) <= 1.0001
    assert all(a["text"] == " ".join(w["word"] for w in a["result"]) for a in alternatives)
    partials = [r["partial"] for r in replies["boosted"] if r.get("partial")]
    assert partials and any("kubernetes" in p for p in partials)  # partials are decoded with the phrase list too


@pytest.mark.parametrize(
    "config",
    [
        {"max_alternatives": -1},
        {"max_alternatives": 11},
        {"max_alternatives": "3"},
        {"phrase_list": "kubernetes"},
        {"beam_size": 0},
    ],
)
def test_bad_stream_decoding_config_closes_with_1007(server, config):
    with connect(ws_url(server)) as ws:
        ws.send(json.dumps({"config": config}))
        with contextlib.suppress(ConnectionClosed):  # the server may already have closed on the config
            ws.send(b"\0\0" * 1600)
        reply = json.loads(ws.recv(timeout=10))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
    assert "error" in reply and closed.value.rcvd.code == 1007


def test_a_server_without_an_lm_decodes_greedily_and_refuses_beam_options(tmp_path, rare, transcriber):
    with serve(tmp_path / "server.log", device="cpu", precision="fp32", lm="") as (url, _):
        plain = post(url, rare)
        assert plain.status_code == 200
        log_probs = transcriber.log_probs([decode(rare)])[0]
        assert plain.json()["text"] == transcriber.decode(log_probs, 1.0, None)[0].text
        refused = post(url, rare, hotwords="kubernetes")
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "hotwords"
        assert "without a language model" in refused.json()["error"]["message"]
        with connect(url.replace("http://", "ws://") + "/v1/stream") as ws:
            ws.send(json.dumps({"config": {"phrase_list": ["kubernetes"]}}))
            ws.send(b"\0\0" * 1600)
            assert "ASR_LM" in json.loads(ws.recv(timeout=10))["error"]

"""``WS /v1/stream`` against the real server, as a Vosk client drives it: lockstep send and receive."""

from __future__ import annotations

import json

import pytest
import torch
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.servers import metric, session, ws_url
from tests.support.speech import STREAM_SENTENCES as SENTENCES
from tests.support.speech import pcm, without_tail
from training.metrics import cer


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_partials_then_one_result_per_utterance_timed_from_the_stream_start(server, rate):
    audio, starts = pcm(rate)
    with connect(ws_url(server[0])) as ws:
        ws.send(json.dumps({"config": {"sample_rate": rate, "words": True}}))
        chunk = rate // 5 * 2  # 200 ms
        replies = session(ws, audio, chunk)
        ws.send('{"eof" : 1}')
        last = json.loads(ws.recv(timeout=30))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1000
    assert len(replies) == -(-len(audio) // chunk)  # exactly one reply per audio message
    results = [r for r in replies if "result" in r]
    assert [set(r) for r in replies if r not in results] == [{"partial"}] * (len(replies) - len(results))
    assert len(results) == 2 and last == {"text": ""}
    partials = [r["partial"] for r in replies[: replies.index(results[0])] if r["partial"]]
    # The text grows as the utterance does, and its last partial nearly begins the final reading (which
    # hears up to one partial interval more, and whose wider beam may pick other whole words).
    assert len(partials) >= 3 and len(partials[0]) < len(partials[-1])
    final_start = " ".join(results[0]["text"].split()[: len(partials[-1].split())])
    assert cer([final_start], [partials[-1]]) <= 0.4
    for result, start, text in zip(results, starts, SENTENCES, strict=True):
        assert result["text"] == " ".join(w["word"] for w in result["result"])
        assert cer([text], [result["text"]]) <= 0.35, result["text"]
        assert start - 0.1 <= result["result"][0]["start"] < start + 0.3
        assert all(0 < w["conf"] <= 1 and w["start"] < w["end"] for w in result["result"])


def test_a_stream_sent_no_config_is_read_at_vosk_s_default_of_8000_hz(server):
    """Vosk's Asterisk module and Node example send no config; Vosk's server then reads 8 kHz."""
    audio, _ = pcm(8000, sentences=["turn off the kitchen lights"])
    with connect(ws_url(server[0])) as ws:
        replies = session(ws, audio, 1600)
        ws.send('{"eof" : 1}')
        replies.append(json.loads(ws.recv(timeout=30)))
    [text] = [r["text"] for r in replies if r.get("text")]
    assert cer(["turn off the kitchen lights"], [text]) <= 0.35, text


def test_phrase_list_is_a_closed_grammar_and_hotwords_only_favour(server):
    """Vosk's phrase_list limits results to its phrases (speech outside them reads as the nearest one, or as
    [unk] where the list has it); this service's hotwords only favour words."""
    commands = ["turn on the kitchen lights", "turn off the kitchen lights", "open the garage door"]

    def said(sentence: str, config: dict) -> str:
        audio, _ = pcm(16000, sentences=[sentence])
        with connect(ws_url(server[0])) as ws:
            ws.send(json.dumps({"config": {"sample_rate": 16000, **config}}))
            replies = session(ws, audio, 6400)
            ws.send('{"eof" : 1}')
            replies.append(json.loads(ws.recv(timeout=30)))
        return " ".join(r["text"] for r in replies if r.get("text"))

    assert said("turn off the kitchen lights", {"phrase_list": commands}) == "turn off the kitchen lights"
    assert said("what is the weather in paris", {"phrase_list": commands}) in commands
    assert "[unk]" in said("what is the weather in paris", {"phrase_list": [*commands, "[unk]"]})
    assert said("what is the weather in paris", {"hotwords": commands}) not in commands


def test_without_words_a_result_carries_only_text_and_eof_flushes_the_open_utterance(server):
    audio, _ = pcm(16000, pause=0.0, sentences=["turn off the kitchen lights"])
    cut = audio[: 2 * 16000 * 3 // 2]  # the first 1.5 s: half a second of silence, then the speech breaks off
    with connect(ws_url(server[0])) as ws:
        ws.send(json.dumps({"config": {"sample_rate": 16000, "words": False}}))
        replies = session(ws, cut, 3200)
        assert all(set(r) == {"partial"} for r in replies) and replies[-1]["partial"]
        ws.send('{"eof" : 1}')
        last = json.loads(ws.recv(timeout=30))
    assert set(last) == {"text"} and last["text"].split()[0] == replies[-1]["partial"].split()[0]


def test_reset_answers_with_the_open_utterance_and_starts_afresh(server):
    audio, _ = pcm(16000, pause=0.0, sentences=["turn off the kitchen lights"])
    audio = audio[: 2 * without_tail(torch.frombuffer(bytearray(audio), dtype=torch.int16) / 32768).numel()]
    with connect(ws_url(server[0])) as ws:
        ws.send(json.dumps({"config": {"sample_rate": 16000}}))
        session(ws, audio, 4000)
        assert metric(server[0], "asr_streams_in_flight") == 1
        ws.send('{"reset" : 1}')
        flushed = json.loads(ws.recv(timeout=30))
        assert cer(["turn off the kitchen lights"], [flushed["text"]]) <= 0.35 and "result" in flushed
        replies = session(ws, audio, 4000)
        assert replies[0] == {"partial": ""}  # the stream's first 125 ms: silence
        ws.send('{"eof" : 1}')
        again = json.loads(ws.recv(timeout=30))
    # Timestamps go on from the start of the stream, across the reset.
    assert again["result"][0]["start"] > flushed["result"][-1]["end"]

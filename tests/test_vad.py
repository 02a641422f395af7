"""Cutting a live stream into utterances: onsets, pauses, the length limit and the partial cadence (on tones,
with the energy detector), and what each detector takes for speech."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from asr.audio import decode
from asr.features import prepare_waveform, resample
from service.settings import Settings
from service.vad import Stream
from tests.support.speech import speech
from training.corpus import RECORDED_NOISE

RATE = 8000
VAD = replace(Settings().vad, detector="energy")
NEURAL = replace(Settings().vad, detector="neural")


def tone(seconds: float, level: float = 0.3) -> torch.Tensor:
    t = torch.arange(round(seconds * RATE)) / RATE
    return level * torch.sin(2 * torch.pi * 220 * t)


def syllables(seconds: float) -> torch.Tensor:
    """A tone whose loudness rises and falls four times a second, like speech without pauses."""
    t = torch.arange(round(seconds * RATE)) / RATE
    return tone(seconds) * torch.sin(2 * torch.pi * 2 * t).abs()


def silence(seconds: float) -> torch.Tensor:
    return torch.zeros(round(seconds * RATE))


def feed(stream: Stream, audio: torch.Tensor, chunk: int) -> list:
    return [u for part in audio.split(chunk) for u in stream.feed(part)]


def test_a_pause_closes_an_utterance_with_a_little_audio_either_side():
    audio = torch.cat([silence(0.5), tone(1.0), silence(0.8), tone(0.6), silence(0.2)])
    stream = Stream(RATE, VAD)
    [first] = feed(stream, audio, chunk=1000)
    # 200 ms of pre-roll before the onset (detected after 30 ms of speech), 200 ms of the pause after.
    assert first.start == pytest.approx(0.5 - 0.2 + 0.03, abs=0.011)
    assert first.audio.numel() / RATE == pytest.approx(0.2 + 1.0 - 0.03 + 0.2, abs=0.011)
    assert stream.is_open
    second = stream.flush()
    assert second.start == pytest.approx(2.3 - 0.2 + 0.03, abs=0.011)
    assert (second.audio.numel() + second.start * RATE) / RATE == pytest.approx(audio.numel() / RATE)
    assert not stream.is_open and stream.flush() is None


def test_utterances_do_not_depend_on_how_the_audio_was_chunked():
    audio = torch.cat([silence(0.3), tone(0.7), silence(0.6), tone(0.4, level=0.1), silence(0.7)])
    whole = Stream(RATE, VAD).feed(audio)
    pieces = feed(Stream(RATE, VAD), audio, chunk=37)
    assert len(whole) == len(pieces) == 2
    for a, b in zip(whole, pieces, strict=True):
        assert a.start == b.start and torch.equal(a.audio, b.audio)


def test_unbroken_speech_is_cut_at_the_length_limit():
    stream = Stream(RATE, replace(VAD, max_utterance_seconds=2.0))
    cuts = feed(stream, syllables(5.0), chunk=800)
    assert [round(u.audio.numel() / RATE, 2) for u in cuts] == [2.0, 2.0]
    assert cuts[1].start == pytest.approx(cuts[0].start + 2.0)
    rest = stream.flush()
    assert rest.start == pytest.approx(cuts[1].start + 2.0)
    assert rest.start + rest.audio.numel() / RATE == pytest.approx(5.0)


def test_partials_are_due_every_interval_of_new_audio():
    stream = Stream(RATE, replace(VAD, partial_interval_ms=400))
    stream.feed(silence(0.5))
    assert not stream.partial_due()
    stream.feed(tone(0.03))  # opens, with 200 ms of audio (the onset and the pre-roll before it)
    assert stream.is_open and not stream.partial_due()
    stream.feed(tone(0.19))
    assert not stream.partial_due()
    stream.feed(tone(0.01))
    assert stream.partial_due()
    stream.mark_read()
    stream.feed(tone(0.39))
    assert not stream.partial_due()
    stream.feed(tone(0.01))
    assert stream.partial_due()


def test_clicks_and_steady_noise_open_nothing_but_speech_over_noise_does():
    torch.manual_seed(0)
    noise = 0.01 * torch.randn(RATE * 4)  # about -40 dBFS
    click = torch.cat([silence(0.5), tone(0.02), silence(0.5)])
    stream = Stream(RATE, VAD)
    assert feed(stream, click, 400) == [] and not stream.is_open
    stream = Stream(RATE, VAD)
    assert feed(stream, noise, 400) == [] and not stream.is_open
    speech = noise.clone()
    speech[RATE : 2 * RATE] += tone(1.0)
    [utterance] = feed(Stream(RATE, VAD), speech, 400)
    assert utterance.start == pytest.approx(1.0 - 0.2 + 0.03, abs=0.011)


def test_the_network_takes_speech_for_speech_and_music_for_none_where_the_level_takes_both():
    """Music is as loud and as uneven as speech: the energy detector cuts utterances out of it."""
    music = prepare_waveform(*decode(RECORDED_NOISE / "frozen-mainzik-1p.ogg"))[: 4 * 16000]
    music = 0.3 * music / music.abs().max()
    stream = Stream(16000, NEURAL)
    assert feed(stream, music, 6400) == [] and not stream.is_open
    assert len(feed(Stream(16000, VAD), music, 6400)) >= 2
    said = speech("open the garage door please")
    voiced = torch.nonzero(said.abs() > 0.01).flatten()
    audio = torch.cat([torch.zeros(8000), said, torch.zeros(16000)])
    for rate in (16000, 8000):
        at_rate = resample(audio, 16000, rate)
        stream = Stream(rate, NEURAL)
        [utterance] = feed(stream, at_rate, rate // 10)
        assert not stream.is_open
        # the onset within one 32 ms chunk and the 30 ms onset, less the 200 ms pre-roll, of the first sound
        first, last = 0.5 + voiced[0] / 16000, 0.5 + voiced[-1] / 16000
        assert first - 0.2 - 0.01 <= utterance.start <= first - 0.2 + 0.1
        assert utterance.start + utterance.audio.numel() / rate >= last


def test_the_network_decides_the_same_however_the_audio_is_chunked():
    audio = torch.cat([torch.zeros(4000), speech("turn on the lights"), torch.zeros(12000), speech("thank you")])
    whole = Stream(16000, NEURAL).feed(audio)
    pieces = feed(Stream(16000, NEURAL), audio, chunk=1234)
    assert len(whole) == len(pieces) == 1
    assert whole[0].start == pieces[0].start and torch.equal(whole[0].audio, pieces[0].audio)

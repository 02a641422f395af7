"""Incremental reads of a growing utterance with the bundled model: exactness, bounded work, batching."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
import torch

from asr.decoding import greedy_decode
from asr.features import features, log_mel
from asr.incremental import Settled, advance
from asr.model import AcousticModel
from asr.transcriber import Transcriber
from service.engine import Engine
from service.metrics import Metrics
from service.recogniser import transcribe
from service.settings import Settings
from service.vosk import Session
from tests.support.speech import SENTENCES, speech
from training.metrics import cer

READ = 6400
"""Samples between reads: 400 ms, the service's partial cadence."""


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    """In fp32, whose outputs do not depend on batch-mates (int8's activation scales do)."""
    return Transcriber.from_checkpoint("asr/models/default.safetensors", "cpu", "fp32")


def centred(transcriber: Transcriber, running_mean_frames: int) -> Transcriber:
    """The bundled weights with another input centring: 0, the training set's fixed mean; N, a running mean."""
    model = AcousticModel(dataclasses.replace(transcriber.model.config, running_mean_frames=running_mean_frames))
    model.load_state_dict(transcriber.model.state_dict())
    return Transcriber(model.eval(), transcriber.info, precision="fp32")


@pytest.fixture(scope="module")
def sentences() -> torch.Tensor:
    """About 9 s of speech: long enough for a 2 s window to settle most of it."""
    return torch.cat([speech(text) for text in SENTENCES[:5]])


def stream(transcriber: Transcriber, audio: torch.Tensor, window: int | None) -> tuple[torch.Tensor, list[Settled]]:
    """Read ``audio`` as it grows, then finally; the final log-probabilities and each read's settled state."""
    model, config = transcriber.model, transcriber.info.feature_config
    settled = [Settled()]
    with torch.inference_mode():
        for end in range(READ, audio.numel(), READ):
            settled += advance(model, config, [audio[:end]], settled[-1:], window)[1]
        [log_probs], _ = advance(model, config, [audio], settled[-1:], window, final=True)
    return log_probs, settled


def test_the_front_end_needs_only_its_stated_context(transcriber, sentences):
    # With a fixed centring: a running mean also reads the sum of every earlier frame (the next test).
    fixed = centred(transcriber, 0)
    model, config = fixed.model, fixed.info.feature_config
    step, context = model.config.stride * config.hop_length, model.front_end_context()
    with torch.inference_mode():
        whole = model.front_end(log_mel(sentences, config)[None])[0][0]
        tail = model.front_end(log_mel(sentences[50 * step :], config)[None])[0][0]
    assert torch.equal(tail[context:], whole[50 + context :])
    assert not torch.equal(tail[: context - 2], whole[50 : 48 + context])


def test_without_a_window_every_read_is_a_full_re_read(transcriber, sentences):
    with torch.inference_mode():
        full, _ = transcriber.model(features(sentences, 16000, transcriber.info.feature_config)[None])
    log_probs, settled = stream(transcriber, sentences, window=None)
    # The same numbers, up to float rounding: the front end ran on slices of different lengths.
    torch.testing.assert_close(log_probs, full[0], atol=1e-4, rtol=0)
    assert {s.frames for s in settled} == {0}


def test_a_running_mean_streams_as_it_reads_the_whole_clip(transcriber, sentences):
    running = centred(transcriber, 200)
    model = running.model
    with torch.inference_mode():
        feats = features(sentences, 16000, running.info.feature_config)[None]
        full, _ = model(feats)
        front, _ = model.front_end(feats)
    log_probs, _ = stream(running, sentences, window=None)
    torch.testing.assert_close(log_probs, full[0], atol=1e-4, rtol=0)
    # With a window, every read began late in the clip, yet the front end's kept outputs are the whole
    # clip's: each frame was centred on the sum of everything heard before it, carried from read to read.
    _, settled = stream(running, sentences, window=50)
    last = settled[-1]
    assert last.frames > 300 and last.heard is not None
    torch.testing.assert_close(last.front, front[0, last.frames : last.front_frames], atol=1e-4, rtol=0)


def test_a_window_bounds_the_work_of_each_read_and_keeps_nearly_all_the_text(transcriber, sentences):
    window = 100
    log_probs, settled = stream(transcriber, sentences, window)
    ends = range(0, sentences.numel(), READ)
    totals = [int(transcriber.model.output_lengths(torch.tensor(end // 160 + 1))) for end in ends]
    # Each read left exactly the newest `window` frames open, so it recomputed at most window + 20 frames.
    assert [s.frames for s in settled] == [max(0, total - window) for total in totals]
    # And the front end's output is kept from the moment it is final, so it runs once per frame.
    context = transcriber.model.front_end_context()
    assert [s.front_frames for s in settled[1:]] == [total - context for total in totals[1:]]
    # Settled frames heard only 2 s of what follows them, which costs a few characters at most.
    reference = " ".join(SENTENCES[:5])
    full = transcriber.transcribe([(sentences, 16000)])[0].text
    windowed = greedy_decode(log_probs, transcriber.frame_seconds).text
    assert windowed != "" and cer([reference], [windowed]) <= cer([reference], [full]) + 0.03


def test_utterances_read_together_read_as_they_do_alone(transcriber, sentences):
    model, config = transcriber.model, transcriber.info.feature_config
    short, long = sentences[: 3 * 16000], sentences
    with torch.inference_mode():
        _, [settled_long] = advance(model, config, [long[: 6 * 16000]], [Settled()], 50)
        together, _ = advance(model, config, [short, long], [Settled(), settled_long], 50)
        alone = [advance(model, config, [a], [s], 50)[0][0] for a, s in ((short, Settled()), (long, settled_long))]
    for a, b in zip(together, alone, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_audio_cut_shorter_than_what_was_settled_is_read_afresh(transcriber, sentences):
    model, config = transcriber.model, transcriber.info.feature_config
    with torch.inference_mode():
        _, [settled] = advance(model, config, [sentences], [Settled()], 25)
        [short], [again] = advance(model, config, [sentences[:8000]], [settled], 25, final=True)
        [fresh], _ = advance(model, config, [sentences[:8000]], [Settled()], 25, final=True)
    assert torch.equal(short, fresh) and again.frames == short.shape[0]


def test_a_stream_reads_partials_incrementally_and_its_final_in_full(sentences):
    settings = Settings(
        device="cpu",
        precision="fp32",
        stream_window_seconds=1.0,
        stream_endpoint_silence_ms=2000,
        stream_sample_rate=16000,
    )
    engine = Engine.load(settings, Metrics())
    whole_reads = sentences[: sentences.numel() // READ * READ]  # so that the last chunk is read too
    pcm = (whole_reads * 32767).round().to(torch.int16).numpy().tobytes()

    async def talk() -> tuple[list[dict], torch.Tensor, dict]:
        session = Session(engine, settings.stream)
        replies = [(await session.audio(pcm[i : i + 2 * READ])).wire() for i in range(0, len(pcm), 2 * READ)]
        return replies, session.stream.open_utterance().audio, session._settled[1], (await session.flush()).wire()

    try:
        replies, utterance, settled, final = asyncio.run(talk())
        [full] = asyncio.run(transcribe(engine, utterance, engine.decoding))
    finally:
        engine.close()
    total = int(engine.transcriber.model.output_lengths(torch.tensor(utterance.numel() // 160 + 1)))
    assert engine.stream_window == 50 and settled.frames == total - 50
    assert replies[-1]["partial"] and final["text"] == full.text

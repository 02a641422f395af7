"""Reading audio files of every supported format, rate and channel count, and rejecting what is not audio."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest
import soundfile
import torch

from asr.audio import AudioDecodeError, decode, stream
from asr.features import FeatureConfig, prepare_waveform
from bench.serving import FORMATS, encode
from tests.conftest import speak


def _similarity(a: torch.Tensor, b: torch.Tensor, lag: int = 2048) -> float:
    """Peak normalised cross-correlation over shifts of up to ``lag`` samples: lossy codecs add a delay."""
    n = min(a.numel(), b.numel())
    a, b = a[:n] - a[:n].mean(), b[lag : n - lag] - b[lag : n - lag].mean()
    correlation = np.correlate(a.numpy(), b.numpy(), mode="valid")
    return float(correlation.max() / (a.norm() * b.norm()))


def test_wav_reads_exactly_as_libsndfile_does():
    wav = speak("the quick brown fox")
    waveform, rate = decode(wav)
    expected, expected_rate = soundfile.read(io.BytesIO(wav), dtype="float32", always_2d=True)
    assert rate == expected_rate == 22050
    assert torch.equal(waveform, torch.from_numpy(expected.T.copy()))


@pytest.mark.parametrize("kind", sorted(FORMATS))
@pytest.mark.parametrize("rate", [16000, 48000])
def test_every_format_decodes_to_the_speech_it_holds(kind, rate):
    original, original_rate = decode(speak("call me when you get home"))
    speech = prepare_waveform(original, original_rate, FeatureConfig(sample_rate=rate))
    stereo = torch.stack([speech.reshape(-1), 0.5 * speech.reshape(-1)])
    waveform, got_rate = decode(encode(stereo, rate, kind))
    assert waveform.shape[0] == 2 and waveform.dtype == torch.float32
    assert got_rate == (48000 if "opus" in FORMATS[kind][1] else rate)
    assert waveform.shape[1] / got_rate == pytest.approx(stereo.shape[1] / rate, abs=0.1)
    mono = prepare_waveform(waveform, got_rate)
    assert _similarity(mono, prepare_waveform(stereo, rate)) > 0.95


def test_trackyields_pieces_that_add_up_to_the_whole_file():
    data = encode(torch.randn(1, 16000 * 30) * 0.1, 16000, "flac")
    pieces = list(stream(data))
    assert len(pieces) > 10 and max(p.shape[-1] for p, _ in pieces) <= 16384
    whole, _ = decode(data)
    assert torch.equal(torch.cat([p for p, _ in pieces], dim=-1), whole)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the audio is empty (0 bytes)"),
        (b"these are not audio bytes" * 40, "not a supported audio file (Invalid data found when processing input)"),
    ],
)
def test_what_is_not_audio_is_named(data, message):
    with pytest.raises(AudioDecodeError) as error:
        decode(data)
    assert str(error.value) == message


def test_a_file_without_sound_is_named():
    video = io.BytesIO()
    with av.open(video, "w", format="webm") as out:
        track = out.add_stream("libvpx", rate=10)
        track.width = track.height = 16
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), dtype=np.uint8), format="rgb24")
        for packet in [*track.encode(frame), *track.encode(None)]:
            out.mux(packet)
    with pytest.raises(AudioDecodeError, match="the file holds no audio stream"):
        decode(video.getvalue())


def test_a_truncated_file_is_an_error_or_its_prefix():
    """A cut-off upload must never hang or crash: FFmpeg either reads what is there or reports it."""
    data = encode(torch.randn(1, 16000 * 3) * 0.1, 16000, "mp3")
    try:
        waveform, _ = decode(data[: len(data) // 2])
    except AudioDecodeError:
        return
    assert 0 < waveform.shape[-1] < 16000 * 3

"""Reading audio files of every supported format, rate and channel count, and rejecting what is not audio."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import torch

from asr.audio import AudioDecodeError, AudioTooLong, decode, stream
from asr.features import FeatureConfig, prepare_waveform
from tests.support.speech import FORMATS, adts, claiming, encode, speak, wav_bytes


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


@pytest.mark.parametrize("channels", [8, 16, 64])
def test_files_of_eight_to_64_channels_decode(channels):
    """PyAV's conversion of planar frames of 8 or more channels crashed the process (a 60-byte WAV did it)."""
    tone = np.sin(np.arange(1600) / 5)[:, None] * 8000 * np.linspace(0.1, 1, channels)
    waveform, rate = decode(wav_bytes(tone, 16000))
    assert rate == 16000 and waveform.shape == (channels, 1600)
    assert torch.allclose(waveform[-1], torch.from_numpy(tone[:, -1].astype(np.int16) / 32768).float())


def test_planar_codecs_of_eight_channels_decode(tmp_path):
    """Vorbis decodes to planar floats: the format whose conversion crashed."""
    path = tmp_path / "8.ogg"
    subprocess.run(["sox", "-n", "-c", "8", "-r", "16000", str(path), "synth", "0.5", "sine", "440"], check=True)
    waveform, rate = decode(path)
    assert waveform.shape[0] == 8 and rate == 16000 and waveform.abs().max() > 0.5


def test_more_than_64_channels_are_refused_by_name():
    with pytest.raises(AudioDecodeError, match="the audio has 65 channels; at most 64 are supported"):
        decode(wav_bytes(np.zeros((100, 65)), 16000))


@pytest.mark.parametrize("rate", [1, 3999, 192001])
def test_sample_rates_outside_4_to_192_khz_are_refused_before_decoding(rate):
    """A 1.2 KB WAV at 1 Hz claimed 600 s and cost 37 s of CPU."""
    with pytest.raises(AudioDecodeError, match="the sample rate must be a number from 4000 to 192000 Hz"):
        decode(wav_bytes(np.zeros((600, 1)), rate))


def test_a_header_that_claims_more_than_the_limit_is_refused_before_decoding():
    flac = encode(torch.zeros(1, 8000), 8000, "flac")
    with pytest.raises(AudioTooLong, match="the file says it lasts 3600 s, longer than 30 s"):
        next(stream(claiming(flac, 3600, 8000), max_seconds=30))
    assert sum(p.shape[-1] for p, _ in stream(claiming(flac, 20, 8000), max_seconds=30)) == 8000


def test_a_packet_ffmpeg_cannot_decode_past_the_stated_end_ends_the_file_and_one_before_it_is_refused():
    """libFLAC wrote this corpus file; FFmpeg's parser splits a packet off its end that it cannot decode, which
    stopped a training run (sitting 13 of issue 18). sox and libsndfile read it whole, and so must we."""
    flac = (Path(__file__).parent / "data" / "flac-false-sync.flac").read_bytes()
    waveform, rate = decode(flac)
    expected, _ = soundfile.read(io.BytesIO(flac), dtype="float32")
    assert rate == 16000 and waveform.shape == (1, 28800) and torch.equal(waveform[0], torch.from_numpy(expected))
    with pytest.raises(AudioDecodeError, match="not a supported audio file"):
        decode(claiming(flac, 2.0, 16000))  # the same packet, but before the end the file states


def test_decoding_stops_at_the_limit_where_the_header_says_nothing():
    data = encode(torch.zeros(1, 16000 * 40), 16000, "mp3")
    with pytest.raises(AudioTooLong, match="longer than 30 s"):
        for _ in stream(data[: len(data) // 2] + data[len(data) // 2 :], max_seconds=30):
            pass


def test_float_samples_beyond_full_scale_are_clipped_to_it():
    """Samples near 1e30 overflowed the features, and the int8 model then failed the whole batch."""
    samples = np.array([[0.5], [-3.0], [1e30], [-1e30]])
    waveform, _ = decode(wav_bytes(samples, 16000, float_samples=True))
    assert waveform[0].tolist() == [0.5, -1.0, 1.0, -1.0]


def test_a_stream_that_changes_channel_count_partway_decodes_at_one_rate():
    """ADTS frames stand alone: a mono AAC stream followed by a stereo one at another rate, as some broadcasts send."""
    mono, stereo = adts(torch.zeros(1, 16000), 16000), adts(torch.zeros(2, 22050) + 0.1, 22050)
    pieces = list(stream(mono + stereo))
    assert {rate for _, rate in pieces} == {16000}
    assert {p.shape[0] for p, _ in pieces} == {1, 2}
    waveform, rate = decode(mono + stereo)
    assert waveform.shape[0] == 1 and waveform.shape[1] / rate == pytest.approx(2.0, abs=0.25)

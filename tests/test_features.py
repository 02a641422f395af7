import math
import subprocess
import sys

import pytest
import torch
import torchaudio.functional as AF

from asr.features import (
    FeatureConfig,
    _resample_each,
    features,
    log_mel,
    mel_centres,
    mel_filters,
    num_frames,
    pad_batch,
    prepare_waveform,
    resample,
)


def test_shape_and_frame_rate():
    config = FeatureConfig()
    out = features(torch.randn(16000 * 3), 16000)
    assert out.shape == (128, num_frames(48000)) == (128, 301)
    assert config.frame_seconds == pytest.approx(0.01)
    assert torch.isfinite(out).all()


def test_no_mel_filter_is_empty():
    filters = mel_filters(FeatureConfig())
    assert filters.shape == (257, 128)
    assert (filters.sum(dim=0) > 0).all()


@pytest.mark.parametrize("scale", ["slaney", "htk"])
def test_mel_centres_are_where_each_filter_peaks(scale):
    config = FeatureConfig(mel_scale=scale, n_fft=8192)  # a fine grid: each peak within one 2 Hz bin of its centre
    filters = mel_filters(config)
    peaks = filters.argmax(dim=0).double() * config.sample_rate / config.n_fft
    centres = mel_centres(config)
    assert centres.shape == (128,) and bool((centres.diff() > 0).all())
    assert (peaks - centres).abs().max() < config.sample_rate / config.n_fft


def test_any_rate_and_channel_count_reach_the_same_features(speech):
    waveform, rate = speech
    mono16k = prepare_waveform(waveform, rate)
    stereo48k = AF.resample(torch.stack([mono16k, mono16k]), 16000, 48000)
    from48k = features(stereo48k, 48000)
    direct = features(mono16k, 16000)
    assert from48k.shape == direct.shape
    # Resampling there and back loses only the band edge: the log energies agree closely.
    assert (from48k - direct)[:, 5:-5].abs().median() < 0.05


def test_downmix_is_the_channel_mean():
    left, right = torch.randn(8000), torch.randn(8000)
    assert torch.allclose(prepare_waveform(torch.stack([left, right]), 16000), (left + right) / 2)


def test_rejects_three_dimensional_audio():
    with pytest.raises(ValueError, match="expected a waveform shaped"):
        prepare_waveform(torch.zeros(1, 2, 100), 16000)


def test_log_energy_of_a_tone_scales_with_power():
    tone = torch.sin(2 * math.pi * 1000 * torch.arange(16000) / 16000)
    quiet, loud = log_mel(0.1 * tone), log_mel(tone)
    peak = int(loud.mean(dim=1).argmax())
    config = FeatureConfig()
    assert peak == int(mel_filters(config)[1000 * config.n_fft // 16000].argmax())  # the band that holds 1 kHz
    # Ten times the amplitude is a hundred times the power.
    assert (loud - quiet)[peak, 2:-2].mean().item() == pytest.approx(2 * math.log(10), abs=1e-3)


def test_pad_batch_keeps_lengths_and_zero_pads():
    a, b = torch.ones(128, 5), torch.ones(128, 9)
    batch, lengths = pad_batch([a, b])
    assert batch.shape == (2, 128, 9) and lengths.tolist() == [5, 9]
    assert batch[0, :, 5:].abs().sum() == 0


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_the_per_sample_resampler_is_torchaudios_filter(rate):
    """The path taken for rates like 4001 Hz computes the same filter as torchaudio's table for the usual ones."""
    x = 0.3 * torch.randn(rate)
    expected = AF.resample(x, rate, 16000)
    got = _resample_each(x, rate, 16000)
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 5e-5  # torchaudio builds its table in float32, this in float64


def test_a_rate_sharing_no_factor_with_16_khz_resamples_a_tone_faithfully():
    t = torch.arange(4001 * 2) / 4001
    out = resample(torch.sin(2 * math.pi * 1000 * t), 4001, 16000)
    assert out.numel() == math.ceil(16000 * 2 * 4001 / 4001)
    spectrum = torch.fft.rfft(out[4000:-4000]).abs()
    assert spectrum.argmax() * 16000 / (out.numel() - 8000) == pytest.approx(1000, abs=2)


@pytest.mark.parametrize("rate", [4001, 191999])
def test_resampling_any_rate_takes_memory_bounded_per_second(rate):
    """For rates coprime with 16 kHz torchaudio's table holds 16,000 x rate taps: about 1 GB at 4001 Hz."""
    script = f"""
import resource, torch
from asr.features import prepare_waveform
x = torch.randn({rate} * 10)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
y = prepare_waveform(x, {rate})
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, y.numel())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    grown_mb, samples = map(int, done.stdout.split())
    assert samples == 160000 and grown_mb < 100, done.stdout

import math

import pytest
import torch
import torchaudio.functional as AF

from asr.features import FeatureConfig, features, log_mel, mel_filters, num_frames, pad_batch, prepare_waveform


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

"""Augmentation: waveform effects for corpus building, SpecAugment for training batches.

The waveform effects are pure functions of 16 kHz mono audio and explicit parameters; the
corpus builder draws the parameters from each utterance's seed, so a corpus is reproducible.
"""

from __future__ import annotations

import math

import torch
import torchaudio.functional as AF


def add_noise(waveform: torch.Tensor, snr_db: float, seed: int, colour: float = 0.0) -> torch.Tensor:
    """Add Gaussian noise at ``snr_db`` to the speech's power; ``colour`` in [0, 1) tilts it towards low frequencies."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(waveform.shape, generator=generator)
    if colour:
        noise = AF.lfilter(noise, torch.tensor([1.0, -colour]), torch.tensor([1.0, 0.0]), clamp=False)
    signal_power = waveform.square().mean().clamp(min=1e-10)
    scale = torch.sqrt(signal_power / (noise.square().mean() * 10 ** (snr_db / 10)))
    return waveform + scale * noise


def change_speed(waveform: torch.Tensor, factor: float, sample_rate: int = 16000) -> torch.Tensor:
    """Play ``factor`` times faster, pitch moving with it (Kaldi-style speed perturbation)."""
    source = round(sample_rate * factor / 100) * 100
    return AF.resample(waveform, source, sample_rate)


def reverberate(waveform: torch.Tensor, rt60: float, seed: int, sample_rate: int = 16000) -> torch.Tensor:
    """Convolve with a synthetic room: exponentially decaying noise reaching -60 dB after ``rt60`` seconds."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(rt60 * sample_rate)) / sample_rate
    response = torch.randn(t.shape, generator=generator) * torch.exp(-t * 3 * math.log(10) / rt60)
    response[0] = 1.0
    wet = AF.fftconvolve(waveform, response / response.norm())[..., : waveform.shape[-1]]
    return wet * (waveform.abs().max() / wet.abs().max().clamp(min=1e-8))


def band_limit(
    waveform: torch.Tensor, sample_rate: int = 16000, low: float = 300.0, high: float = 3400.0
) -> torch.Tensor:
    """A telephone channel: 8 kHz sampling and a 300-3400 Hz pass band."""
    narrow = AF.resample(waveform, sample_rate, 8000)
    narrow = AF.lowpass_biquad(AF.highpass_biquad(narrow, 8000, low), 8000, high)
    return AF.resample(narrow, 8000, sample_rate)[..., : waveform.shape[-1]]


def _band_mask(size: int, widths: torch.Tensor, limits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random band per row: ``(batch, size)`` True inside ``[start, start + width)``, start < limit - width."""
    starts = (torch.rand(widths.shape, generator=generator) * (limits - widths).clamp(min=0)).long()
    positions = torch.arange(size)
    return (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])


def spec_augment(
    features: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator,
    freq_masks: int = 2,
    max_freq_width: int = 20,
    time_masks: int = 2,
    max_time_fraction: float = 0.05,
) -> torch.Tensor:
    """Masked copy of ``(batch, n_mels, frames)`` features; masks take each utterance's mean value.

    Time-mask widths scale with each utterance's own length, so short clips are not wiped out.
    """
    batch, n_mels, frames = features.shape
    valid = (torch.arange(frames) < lengths[:, None]).unsqueeze(1)
    mean = (features * valid).sum(dim=(1, 2), keepdim=True) / (lengths.view(-1, 1, 1) * n_mels)
    masked = features.clone()
    for _ in range(freq_masks):
        widths = torch.randint(0, max_freq_width + 1, (batch,), generator=generator)
        band = _band_mask(n_mels, widths, torch.full((batch,), n_mels), generator)
        masked = torch.where(band[:, :, None], mean, masked)
    for _ in range(time_masks):
        widths = (torch.rand(batch, generator=generator) * lengths * max_time_fraction).long()
        band = _band_mask(frames, widths, lengths, generator)
        masked = torch.where(band[:, None, :], mean, masked)
    return masked

"""SpecAugment: frequency and time masking of training batches (never at evaluation)."""

from __future__ import annotations

import torch


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

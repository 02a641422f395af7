"""The one log-Mel feature pipeline, shared by training and serving.

Any waveform (any sample rate, any channel count) goes through :func:`prepare_waveform`
to 16 kHz mono and then :func:`log_mel`. Both are pure functions of their inputs and a
:class:`FeatureConfig`, which the checkpoint stores so a model is always fed the
features it was trained on.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import torch
import torchaudio.functional as AF


@dataclass(frozen=True)
class FeatureConfig:
    sample_rate: int = 16000
    n_mels: int = 128
    win_length: int = 400
    """25 ms at 16 kHz."""
    hop_length: int = 160
    """10 ms at 16 kHz."""
    n_fft: int = 512
    """With the Slaney mel scale, 512 leaves none of the 128 filters empty (400 would leave four)."""
    f_min: float = 0.0
    f_max: float = 8000.0
    mel_scale: str = "slaney"
    log_floor: float = 1e-6

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def frame_seconds(self) -> float:
        return self.hop_length / self.sample_rate


def downmix(waveform: torch.Tensor) -> torch.Tensor:
    """``(channels, samples)`` to ``(1, samples)``: the mean of the channels."""
    return waveform.mean(dim=0, keepdim=True) if waveform.shape[0] > 1 else waveform


def prepare_waveform(waveform: torch.Tensor, sample_rate: int, config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Downmix ``(channels, samples)`` or ``(samples,)`` audio to mono float32 at the model's rate."""
    waveform = torch.as_tensor(waveform, dtype=torch.float32)
    if waveform.ndim == 2:
        waveform = downmix(waveform)[0]
    elif waveform.ndim != 1:
        raise ValueError(f"expected a waveform shaped (samples,) or (channels, samples), got {tuple(waveform.shape)}")
    return resample(waveform, sample_rate, config.sample_rate)


_LOWPASS_WIDTH = 6
"""Zero crossings of the sinc on either side, and its roll-off: torchaudio's defaults."""
_ROLLOFF = 0.99
_MAX_TABLE = 1 << 20
"""Most taps in torchaudio's table of filter phases: beyond, the filter is evaluated at each output sample."""
_BLOCK_TAPS = 1 << 18


def resample(waveform: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Mono audio from ``orig`` Hz to ``new`` Hz, band-limited (a Hann-windowed sinc), in bounded memory.

    torchaudio tabulates the filter at each of the ``new / g`` output phases, ``g`` the rates' greatest
    common divisor: a small table for the usual rates, and for 4001 Hz one of 16,000 x 4,015 taps,
    about 1 GB with its temporaries. For such rates the same filter is evaluated at each output
    sample instead, a block at a time: time and memory a small constant per second of audio.
    """
    if orig == new:
        return waveform
    g = math.gcd(orig, new)
    if new // g * (orig // g + 2 * math.ceil(_reach(orig, new))) <= _MAX_TABLE:
        return AF.resample(waveform, orig, new)
    return _resample_each(waveform, orig, new)


def _reach(orig: int, new: int) -> float:
    """How many input samples the filter spans on either side of an output sample."""
    return _LOWPASS_WIDTH * orig / (min(orig, new) * _ROLLOFF)


def _resample_each(waveform: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """torchaudio's filter, evaluated for every output sample: output ``k`` lies at input ``k * orig / new``."""
    base = min(orig, new) * _ROLLOFF
    reach = _reach(orig, new)
    taps = math.ceil(2 * reach) + 2
    length = math.ceil(new * waveform.numel() / orig)
    padded = torch.cat((waveform.new_zeros(taps), waveform, waveform.new_zeros(taps)))
    out = waveform.new_empty(length)
    block = max(1, _BLOCK_TAPS // taps)
    offsets = torch.arange(taps)
    for k0 in range(0, length, block):
        k = torch.arange(k0, min(k0 + block, length))
        first = torch.floor(k * orig / new - reach).long()
        p = first[:, None] + offsets
        t = ((p * new - k[:, None] * orig).double() / (orig * new) * base).clamp_(-_LOWPASS_WIDTH, _LOWPASS_WIDTH)
        kernel = torch.sinc(t) * torch.cos(t * (math.pi / _LOWPASS_WIDTH / 2)).square() * (base / orig)
        out[k0 : k0 + len(k)] = (padded[p + taps] * kernel.float()).sum(dim=1)
    return out


@functools.lru_cache(maxsize=8)
def mel_filters(config: FeatureConfig, device: torch.device | str = "cpu") -> torch.Tensor:
    """The ``(n_fft // 2 + 1, n_mels)`` filterbank; cached, since every clip uses the same one."""
    filters = AF.melscale_fbanks(
        config.n_fft // 2 + 1,
        config.f_min,
        config.f_max,
        config.n_mels,
        config.sample_rate,
        norm="slaney" if config.mel_scale == "slaney" else None,
        mel_scale=config.mel_scale,
    )
    return filters.to(device)


def _hz_to_mel(hz: torch.Tensor, scale: str) -> torch.Tensor:
    if scale == "htk":
        return 2595.0 * torch.log10(1.0 + hz / 700.0)
    log_region = hz >= 1000.0
    return torch.where(log_region, 15.0 + 27.0 * torch.log(hz.clamp(min=1000.0) / 1000.0) / math.log(6.4), hz * 3 / 200)


def _mel_to_hz(mel: torch.Tensor, scale: str) -> torch.Tensor:
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    return torch.where(mel >= 15.0, 1000.0 * torch.exp(math.log(6.4) / 27.0 * (mel - 15.0)), mel * 200 / 3)


def mel_centres(config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Each Mel filter's centre frequency in Hz (float64): where a formant lands on the model's frequency axis."""
    edges = torch.tensor([config.f_min, config.f_max], dtype=torch.float64)
    low, high = _hz_to_mel(edges, config.mel_scale).tolist()
    return _mel_to_hz(torch.linspace(low, high, config.n_mels + 2, dtype=torch.float64)[1:-1], config.mel_scale)


@functools.lru_cache(maxsize=8)
def _window(config: FeatureConfig, device: torch.device) -> torch.Tensor:
    return torch.hann_window(config.win_length, device=device)


def num_frames(num_samples: int, config: FeatureConfig = FeatureConfig()) -> int:
    """Frames that :func:`log_mel` yields for ``num_samples`` samples (centred STFT)."""
    return num_samples // config.hop_length + 1


def log_mel(waveform: torch.Tensor, config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """``(..., samples)`` 16 kHz audio to ``(..., n_mels, frames)`` natural-log Mel energies."""
    shape = waveform.shape
    flat = waveform.reshape(-1, shape[-1]).float()
    spectrum = torch.stft(
        flat,
        config.n_fft,
        config.hop_length,
        config.win_length,
        _window(config, flat.device),
        center=True,
        pad_mode="reflect" if shape[-1] > config.n_fft // 2 else "constant",
        return_complex=True,
    )
    power = spectrum.real.square() + spectrum.imag.square()
    mel = torch.matmul(power.transpose(1, 2), mel_filters(config, flat.device)).transpose(1, 2)
    return torch.log(mel + config.log_floor).reshape(*shape[:-1], config.n_mels, -1)


def features(waveform: torch.Tensor, sample_rate: int, config: FeatureConfig = FeatureConfig()) -> torch.Tensor:
    """Any audio to the model's ``(n_mels, frames)`` input: the whole pipeline in one call."""
    return log_mel(prepare_waveform(waveform, sample_rate, config), config)


def pad_batch(items: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(n_mels, frames_i)`` features into ``(batch, n_mels, max_frames)`` plus their lengths."""
    lengths = torch.tensor([item.shape[-1] for item in items], dtype=torch.long)
    batch = items[0].new_zeros(len(items), items[0].shape[0], int(lengths.max()))
    for i, item in enumerate(items):
        batch[i, :, : item.shape[-1]] = item
    return batch, lengths

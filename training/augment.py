"""Augmentation: waveform effects for corpus building, SpecAugment and VTLP for training batches.

The waveform effects are pure functions of 16 kHz mono audio and explicit parameters; the
corpus builder draws the parameters from each utterance's seed, so a corpus is reproducible.
They stand in for what separates people's recordings from clean synthesis: rooms, microphones,
background sound, codecs and careless levels.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import av
import numpy as np
import torch
import torchaudio.functional as AF

from asr.audio import decode
from asr.features import FeatureConfig, mel_centres


def gaussian_noise(samples: int, seed: int, colour: float = 0.0) -> torch.Tensor:
    """Unit-variance white noise; ``colour`` in [0, 1) tilts it towards low frequencies."""
    noise = torch.randn(samples, generator=torch.Generator().manual_seed(seed))
    if colour:
        noise = AF.lfilter(noise, torch.tensor([1.0, -colour]), torch.tensor([1.0, 0.0]), clamp=False)
    return noise


def add_noise(waveform: torch.Tensor, snr_db: float, seed: int, colour: float = 0.0) -> torch.Tensor:
    """Add Gaussian noise at ``snr_db`` to the speech's power."""
    return mix(waveform, gaussian_noise(waveform.shape[-1], seed, colour), snr_db)


def hum(samples: int, hz: float, harmonics: int, sample_rate: int = 16000) -> torch.Tensor:
    """Mains hum: ``hz`` and its overtones, each weaker by its order, as a badly earthed microphone picks up."""
    t = torch.arange(samples) / sample_rate
    return sum(torch.sin(2 * math.pi * k * hz * t) / k for k in range(1, harmonics + 1))


def at_level(waveform: torch.Tensor, dbfs: float) -> torch.Tensor:
    """Scaled to a root-mean-square level of ``dbfs`` (0 dB: a full-scale square wave); silence stays silent."""
    rms = waveform.square().mean().sqrt()
    return waveform * (10 ** (dbfs / 20) / rms) if rms > 0 else waveform


def change_speed(waveform: torch.Tensor, factor: float, sample_rate: int = 16000) -> torch.Tensor:
    """Play ``factor`` times faster, pitch moving with it (Kaldi-style speed perturbation)."""
    source = round(sample_rate * factor / 100) * 100
    return AF.resample(waveform, source, sample_rate)


def room_response(
    size: tuple[float, float, float],
    rt60: float,
    source: tuple[float, float, float],
    microphone: tuple[float, float, float],
    sample_rate: int = 16000,
) -> torch.Tensor:
    """The impulse response from ``source`` to ``microphone`` in a shoebox room (image-source method).

    A large room cannot reverberate as briefly as a small one (Sabine: even walls that absorb everything
    leave 0.161 V / S seconds), so ``rt60`` is raised to what the room allows."""
    import pyroomacoustics

    volume = math.prod(size)
    surface = 2 * (size[0] * size[1] + size[0] * size[2] + size[1] * size[2])
    shortest = 24 * math.log(10) * volume / (pyroomacoustics.constants.get("c") * surface)
    absorption, order = pyroomacoustics.inverse_sabine(max(rt60, 1.01 * shortest), size)
    room = pyroomacoustics.ShoeBox(
        size, fs=sample_rate, materials=pyroomacoustics.Material(absorption), max_order=min(order, 40)
    )
    room.add_source(source)
    room.add_microphone(microphone)
    room.compute_rir()
    return torch.as_tensor(np.asarray(room.rir[0][0]), dtype=torch.float32)


def reverberate(waveform: torch.Tensor, response: torch.Tensor) -> torch.Tensor:
    """Convolve with a room's response, aligned on its direct path and keeping the dry peak level."""
    response = response[int(response.abs().argmax()) :]
    wet = AF.fftconvolve(waveform, response)[..., : waveform.shape[-1]]
    return wet * (waveform.abs().max() / wet.abs().max().clamp(min=1e-8))


def colour(waveform: torch.Tensor, bands: list[dict], low_cut: float, sample_rate: int = 16000) -> torch.Tensor:
    """A microphone's colouring: a high-pass at ``low_cut`` Hz and peaking filters ``{"hz", "db", "q"}``."""
    out = AF.highpass_biquad(waveform, sample_rate, low_cut)
    for band in bands:
        out = AF.equalizer_biquad(out, sample_rate, band["hz"], band["db"], band["q"])
    return out


def looped(sound: torch.Tensor, samples: int) -> torch.Tensor:
    """``sound`` repeated or cut to ``samples`` long."""
    return sound.repeat(-(-samples // max(1, sound.shape[-1])))[:samples]


def mix(waveform: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """Add ``noise`` (looped or cut to length) at ``snr_db`` below the speech's power."""
    noise = looped(noise, waveform.shape[-1])
    signal_power = waveform.square().mean().clamp(min=1e-10)
    scale = torch.sqrt(signal_power / (noise.square().mean().clamp(min=1e-10) * 10 ** (snr_db / 10)))
    return waveform + scale * noise


def band_limit(
    waveform: torch.Tensor,
    sample_rate: int = 16000,
    low: float = 300.0,
    high: float = 3400.0,
    codec: str | None = None,
) -> torch.Tensor:
    """A telephone channel: 8 kHz sampling, a 300-3400 Hz pass band, and optionally its codec
    (``pcm_mulaw`` for G.711, ``libopencore_amrnb`` for a mobile call at 12.2 kbit/s)."""
    narrow = AF.resample(waveform, sample_rate, 8000)
    narrow = AF.lowpass_biquad(AF.highpass_biquad(narrow, 8000, low), 8000, high)
    if codec:
        return AF.resample(
            encode_decode(narrow, codec, 8000, 12200 if codec == "libopencore_amrnb" else 0), 8000, sample_rate
        )
    return AF.resample(narrow, 8000, sample_rate)[..., : waveform.shape[-1]]


CODEC_CONTAINERS = {
    "libmp3lame": "mp3",
    "libopus": "ogg",
    "aac": "adts",
    "pcm_mulaw": "wav",
    "libopencore_amrnb": "amr",
}


def encode_decode(waveform: torch.Tensor, codec: str, sample_rate: int = 16000, bitrate: int = 0) -> torch.Tensor:
    """The waveform after a round trip through FFmpeg's ``codec`` at ``bitrate`` bit/s, at the same rate.

    Encoder delay and padding stay in: a few tens of milliseconds of silence, as in a real file."""
    rate = 48000 if codec == "libopus" else sample_rate
    samples = AF.resample(waveform, sample_rate, rate) if rate != sample_rate else waveform
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=CODEC_CONTAINERS[codec]) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        if bitrate:
            stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(
            (samples.clamp(-1, 1) * 32767).to(torch.int16).numpy()[None], format="s16", layout="mono"
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    decoded, decoded_rate = decode(buffer.getvalue())
    return AF.resample(decoded[0], decoded_rate, sample_rate) if decoded_rate != sample_rate else decoded[0]


def clip(waveform: torch.Tensor, level: float) -> torch.Tensor:
    """Hard clipping at ``level`` times the peak, then back to the original peak: an overdriven input."""
    peak = waveform.abs().max().clamp(min=1e-8)
    return waveform.clamp(-level * peak, level * peak) / level


def _band_mask(size: int, widths: torch.Tensor, limits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random band per row: ``(batch, size)`` True inside ``[start, start + width)``, start < limit - width."""
    starts = (torch.rand(widths.shape, generator=generator) * (limits - widths).clamp(min=0)).long()
    positions = torch.arange(size)
    return (positions >= starts[:, None]) & (positions < (starts + widths)[:, None])


@dataclass(frozen=True)
class SpecAugment:
    """A SpecAugment policy (Park et al. 2019), with vocal-tract length perturbation (Jaitly and Hinton 2013)."""

    freq_masks: int = 2
    max_freq_width: int = 20
    """Mel bins, of 128."""
    time_masks: int = 2
    max_time_fraction: float = 0.05
    """Of each utterance's own length, so short clips are not wiped out."""
    max_warp: float = 0.0
    """Largest change of the frequency scale: 0.1 draws each utterance's factor from [0.9, 1.1]."""


SPEC_AUGMENT = {
    "off": None,
    "mild": SpecAugment(),
    "strong": SpecAugment(max_freq_width=30, time_masks=5, max_time_fraction=0.04, max_warp=0.1),
}
"""The policies ``train --spec-augment`` names; mild, the default, is what the bundled model was trained with."""


def warp_frequency(features: torch.Tensor, factors: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """``(batch, n_mels, frames)`` log-Mel features as if each speaker's vocal tract were ``factor`` times shorter.

    Frequencies up to 60% of the top filter's scale by the factor; above, a straight line keeps the top in
    place, so no band leaves the axis. Each output bin interpolates the input's two nearest filters.
    """
    top = centres[-1]
    knee = 0.6 * top
    target = centres[None, :]
    factor = factors.double()[:, None]
    source = torch.where(
        target <= knee, target / factor, knee / factor + (target - knee) * (top - knee / factor) / (top - knee)
    )
    upper = torch.searchsorted(centres, source.contiguous()).clamp(1, len(centres) - 1)
    lower = upper - 1
    weight = ((source - centres[lower]) / (centres[upper] - centres[lower])).clamp(0, 1).to(features.dtype)
    frames = features.shape[-1]
    below = features.gather(1, lower[:, :, None].expand(-1, -1, frames))
    above = features.gather(1, upper[:, :, None].expand(-1, -1, frames))
    return below + (above - below) * weight[:, :, None]


def spec_augment(
    features: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator,
    policy: SpecAugment = SpecAugment(),
    feature_config: FeatureConfig = FeatureConfig(),
) -> torch.Tensor:
    """Augmented copy of ``(batch, n_mels, frames)`` features: warped, then masked with each utterance's mean."""
    batch, n_mels, frames = features.shape
    if policy.max_warp:
        factors = 1 + (2 * torch.rand(batch, generator=generator) - 1) * policy.max_warp
        features = warp_frequency(features, factors, mel_centres(feature_config))
    valid = (torch.arange(frames) < lengths[:, None]).unsqueeze(1)
    mean = (features * valid).sum(dim=(1, 2), keepdim=True) / (lengths.view(-1, 1, 1) * n_mels)
    masked = features.clone()
    for _ in range(policy.freq_masks):
        widths = torch.randint(0, policy.max_freq_width + 1, (batch,), generator=generator)
        band = _band_mask(n_mels, widths, torch.full((batch,), n_mels), generator)
        masked = torch.where(band[:, :, None], mean, masked)
    for _ in range(policy.time_masks):
        widths = (torch.rand(batch, generator=generator) * lengths * policy.max_time_fraction).long()
        band = _band_mask(frames, widths, lengths, generator)
        masked = torch.where(band[:, None, :], mean, masked)
    return masked

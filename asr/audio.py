"""Decoding audio files into waveforms; the only place that touches audio containers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile
import torch


class AudioDecodeError(ValueError):
    """The bytes are not audio this build can decode."""


def decode(data: bytes | Path | str) -> tuple[torch.Tensor, int]:
    """Read a WAV/FLAC/OGG/MP3 file (path or bytes) as ``(channels, samples)`` float32 and its rate."""
    if isinstance(data, (bytes, bytearray)):
        if not data:
            raise AudioDecodeError("the audio is empty (0 bytes)")
        source = io.BytesIO(data)
    else:
        source = data
    try:
        samples, sample_rate = soundfile.read(source, dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as error:
        raise AudioDecodeError(f"not a supported audio file ({error.error_string.rstrip('.')})") from None
    except (RuntimeError, TypeError) as error:
        raise AudioDecodeError(f"could not decode the audio: {error}") from None
    if samples.shape[0] == 0:
        raise AudioDecodeError("the audio holds no samples")
    if not np.isfinite(samples).all():
        raise AudioDecodeError("the audio holds NaN or infinite samples")
    return torch.from_numpy(np.ascontiguousarray(samples.T)), int(sample_rate)

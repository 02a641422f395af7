"""Reading audio containers; the only module that knows about file formats.

FFmpeg (through PyAV) reads WAV, FLAC, MP3, OGG/Vorbis, Opus, WebM and M4A/AAC alike. Samples
come out as float32 at the file's own rate and channel count: downmixing and resampling belong to
the shared feature code, so training and serving prepare audio the same way.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import torch

Source = bytes | bytearray | Path | str | BinaryIO


class AudioDecodeError(ValueError):
    """The input is not audio this build can decode."""


def stream(source: Source) -> Iterator[tuple[torch.Tensor, int]]:
    """Yield ``(channels, samples)`` float32 pieces and their rate as FFmpeg decodes them.

    Pieces are a few thousand samples each, so a file of any length can be processed in bounded
    memory. Problems with the input raise :class:`AudioDecodeError`, also midway through.
    """
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioDecodeError("the audio is empty (0 bytes)")
        source = io.BytesIO(source)
    try:
        with av.open(source, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioDecodeError("the file holds no audio stream")
            audio = container.streams.audio[0]
            to_float = av.AudioResampler(format="fltp")
            for frame in container.decode(audio):
                for piece in to_float.resample(frame):
                    yield _checked(piece)
            for piece in to_float.resample(None):
                yield _checked(piece)
    except av.FFmpegError as error:
        raise AudioDecodeError(f"not a supported audio file ({error.strerror or error})") from None
    except (OSError, EOFError) as error:
        raise AudioDecodeError(f"could not read the audio: {error}") from None


def _checked(frame: av.AudioFrame) -> tuple[torch.Tensor, int]:
    samples = frame.to_ndarray()
    if not np.isfinite(samples).all():
        raise AudioDecodeError("the audio holds NaN or infinite samples")
    return torch.from_numpy(samples), frame.sample_rate


def decode(source: Source) -> tuple[torch.Tensor, int]:
    """A whole file as one ``(channels, samples)`` float32 tensor and its sample rate."""
    pieces = list(stream(source))
    if not pieces or sum(p.shape[-1] for p, _ in pieces) == 0:
        raise AudioDecodeError("the audio holds no samples")
    return torch.cat([p for p, _ in pieces], dim=-1), pieces[0][1]

"""Reading audio containers; the only module that knows about file formats.

FFmpeg (through PyAV) reads WAV, FLAC, MP3, OGG/Vorbis, Opus, WebM and M4A/AAC alike. Samples
come out as float32 at the file's own rate and channel count: downmixing and resampling belong to
the shared feature code, so training and serving prepare audio the same way.

What a file may claim is bounded before any sample is decoded: its sample rate, its channel count
and, where the container states it, its duration. A rate of 1 Hz would make a kilobyte last for
minutes, and PyAV's conversion of planar frames with eight channels or more crashes the process,
so every frame is converted to packed floats by FFmpeg, whose filter graph takes up to 64.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import torch

from asr.features import downmix

Source = bytes | bytearray | Path | str | BinaryIO

MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 192000
"""The rates files and streams may have: telephone speech to studio audio."""
MAX_CHANNELS = 64
PIECE_SAMPLES = 8192
"""Samples per decoded piece: a WAV's packets hold about a thousand, and each piece costs Python work, so
FFmpeg joins them (a third less decoding time for the suite's clips)."""


class AudioDecodeError(ValueError):
    """The input is not audio this build can decode."""


class AudioTooLong(Exception):
    """The audio runs past the longest duration the caller accepts."""


def check_sample_rate(rate: object) -> int:
    """``rate`` in whole Hz, if it is a number from MIN_SAMPLE_RATE to MAX_SAMPLE_RATE; AudioDecodeError otherwise."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        limits = f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz"
        raise AudioDecodeError(f"the sample rate must be a number from {limits}, not {rate!r}")
    return int(rate)


def _check_channels(channels: int) -> None:
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioDecodeError(f"the audio has {channels} channels; at most {MAX_CHANNELS} are supported")


def stream(source: Source, max_seconds: float = math.inf) -> Iterator[tuple[torch.Tensor, int]]:
    """Yield ``(channels, samples)`` float32 pieces and their rate as FFmpeg decodes them.

    Pieces are :data:`PIECE_SAMPLES` long (shorter where the input ends or changes format), so a file of any
    length can be processed in bounded memory; all have the first frame's rate, even where the file changes it
    partway. Problems with the input raise :class:`AudioDecodeError`, also midway through; audio longer than
    ``max_seconds`` raises :class:`AudioTooLong`, before decoding where the container says how long
    it is, and otherwise as soon as decoding gets there.
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
            if audio.codec_context is None:  # a damaged header can name a codec FFmpeg cannot open
                raise AudioDecodeError("the file's audio stream cannot be decoded")
            if audio.codec_context.sample_rate:  # what the header states; the frames are checked as they come
                check_sample_rate(audio.codec_context.sample_rate)
            if audio.codec_context.channels:
                _check_channels(audio.codec_context.channels)
            if (claimed := _claimed_seconds(container, audio)) > max_seconds:
                raise AudioTooLong(f"the file says it lasts {claimed:.0f} s, longer than {max_seconds:g} s")
            samples = 0
            for piece, rate in _packed(_frames(container, audio, claimed)):
                samples += piece.shape[-1]
                if samples > max_seconds * rate:
                    raise AudioTooLong(f"longer than {max_seconds:g} s")
                yield piece, rate
    except av.FFmpegError as error:
        raise AudioDecodeError(f"not a supported audio file ({error.strerror or error})") from None
    except (OSError, EOFError) as error:
        raise AudioDecodeError(f"could not read the audio: {error}") from None


def _claimed_seconds(container: av.container.InputContainer, audio: av.AudioStream) -> float:
    """The duration the container states (0 where it states none): the longer of the stream's and the file's."""
    claims = [0.0]
    if audio.duration is not None and audio.time_base is not None:
        claims.append(float(audio.duration * audio.time_base))
    if container.duration is not None:
        claims.append(container.duration / av.time_base)
    return max(claims)


def _frames(container: av.container.InputContainer, audio: av.AudioStream, claimed: float) -> Iterator[av.AudioFrame]:
    """The stream's frames, ending quietly at an undecodable packet once the ``claimed`` duration is all decoded.

    FFmpeg's FLAC parser split a packet off the end of a file that libFLAC wrote and sox and libsndfile read whole
    (tests/data/flac-false-sync.flac), then could not decode it. Past the stated end no packet can add speech."""
    decoded = 0.0
    for packet in container.demux(audio):
        try:
            frames = packet.decode()
        except av.FFmpegError:
            if claimed and decoded >= claimed - 1e-3:  # a millisecond for the rounding of sums of frames
                return
            raise
        for frame in frames:
            decoded += frame.samples / frame.rate
            yield frame


def _packed(frames: Iterator[av.AudioFrame]) -> Iterator[tuple[torch.Tensor, int]]:
    """Frames as ``(channels, samples)`` float32 at the first frame's rate, through a resampler rebuilt
    whenever the input's layout, format or rate changes (an AAC stream may change its channel count partway)."""
    resampler, setup, rate = None, None, 0
    for frame in frames:
        if (frame.format.name, frame.layout.name, frame.rate) != setup:
            _check_channels(len(frame.layout.channels))
            rate = rate or check_sample_rate(frame.rate)
            if resampler is not None:
                yield from ((_checked(piece), rate) for piece in resampler.resample(None))
            resampler = av.AudioResampler(format="flt", rate=rate, frame_size=PIECE_SAMPLES)
            setup = (frame.format.name, frame.layout.name, frame.rate)
        yield from ((_checked(piece), rate) for piece in resampler.resample(frame))
    if resampler is not None:
        yield from ((_checked(piece), rate) for piece in resampler.resample(None))


def _checked(frame: av.AudioFrame) -> torch.Tensor:
    interleaved = sanitise(frame.to_ndarray().reshape(frame.samples, len(frame.layout.channels)))
    return torch.from_numpy(np.ascontiguousarray(interleaved.T))


def sanitise(samples: np.ndarray) -> np.ndarray:
    """Float samples clipped to full scale in place, as a conversion to 16-bit would, so that no input can
    overflow the features (samples near 1e30 made the int8 model fail the whole batch); NaN or infinity is
    refused."""
    if not np.isfinite(samples).all():
        raise AudioDecodeError("the audio holds NaN or infinite samples")
    return np.clip(samples, -1.0, 1.0, out=samples)


def decode(source: Source) -> tuple[torch.Tensor, int]:
    """A whole file as one ``(channels, samples)`` float32 tensor and its sample rate."""
    pieces = list(stream(source))
    if not pieces or sum(p.shape[-1] for p, _ in pieces) == 0:
        raise AudioDecodeError("the audio holds no samples")
    channels = pieces[0][0].shape[0]
    if any(p.shape[0] != channels for p, _ in pieces):
        pieces = [(downmix(p), rate) for p, rate in pieces]
    return torch.cat([p for p, _ in pieces], dim=-1), pieces[0][1]

"""Transcribing a whole file of any length in bounded memory: overlapping windows, and their words merged.

The file is decoded piece by piece and cut into overlapping windows at its own rate; each window
is downmixed and resampled by the shared feature code and goes through the batcher like any other
request. Neighbouring windows hand over at a seam in the middle of their overlap: a window keeps the
words whose midpoint it places before the seam, and the next one adds the words that lie after the
last word kept so far. Each window reads a word near the seam with its own timing, so the next one may
reach back a quarter of the overlap before the seam for a word the earlier one placed just after it;
a word cut by one window's edge is read whole by its neighbour, and the merged transcript has no gaps
and no doubles.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace

import torch

from asr.audio import AudioDecodeError, Source, stream
from asr.features import downmix, resample
from asr.transcript import Transcript, Word

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Windowing:
    """From ``ASR_WINDOW_*`` (their defaults are :class:`service.settings.Settings`')."""

    seconds: float
    """Files longer than this are cut into windows this long."""
    overlap_seconds: float
    in_flight: int
    """Windows of one file queued at once: bounds its memory."""


@dataclass(frozen=True)
class Window:
    waveform: torch.Tensor
    """``(1, samples)`` at the file's rate: its channels downmixed."""
    sample_rate: int
    start: float
    """Seconds from the start of the file."""
    keep_from: float
    """The earliest midpoint of a word this window may contribute, in seconds from the start of the file."""
    keep_to: float
    """The seam with the next window: this window's words end at midpoints before it."""


def windows(pieces: Iterator[tuple[torch.Tensor, int]], seconds: float, overlap: float) -> Iterator[Window]:
    """Cut decoded pieces into mono windows of ``seconds`` that overlap by ``overlap``, holding about one window.

    Each piece is downmixed as it comes, so memory does not grow with the channel count, and a file whose
    channel count changes partway cuts like any other."""
    buffer: list[torch.Tensor] = []
    held = start = 0
    rate = size = hop = 0
    for piece, piece_rate in pieces:
        if not rate:
            rate = piece_rate
            size, hop = round(seconds * rate), round((seconds - overlap) * rate)
        buffer.append(downmix(piece))
        held += piece.shape[-1]
        while held > size:  # audio follows this window, so it is not the last
            audio = torch.cat(buffer, dim=-1)
            yield _window(audio[:, :size], rate, start, overlap, last=False)
            buffer, held, start = [audio[:, hop:]], held - hop, start + hop
    if held:
        yield _window(torch.cat(buffer, dim=-1), rate, start, overlap, last=True)


def _window(waveform: torch.Tensor, rate: int, start: int, overlap: float, last: bool) -> Window:
    begin = start / rate
    keep_from = 0.0 if start == 0 else begin + overlap / 4
    keep_to = math.inf if last else begin + waveform.shape[-1] / rate - overlap / 2
    return Window(waveform, rate, begin, keep_from, keep_to)


def kept_words(window: Window, transcript: Transcript, after: float = -math.inf) -> list[Word]:
    """The window's words in seconds from the start of the file: those in its own part that lie past
    ``after``, the end of the last word the earlier windows kept."""
    shifted = [replace(w, start=w.start + window.start, end=w.end + window.start) for w in transcript.words]
    return [w for w in shifted if window.keep_from <= (mid := (w.start + w.end) / 2) < window.keep_to and mid > after]


@dataclass(frozen=True)
class FileTranscript:
    transcript: Transcript
    duration: float
    windows: int


async def transcribe_file(
    source: Source,
    recognise: Callable[[torch.Tensor], Awaitable[Transcript]],
    sample_rate: int,
    windowing: Windowing,
    name: str = "upload",
    max_seconds: float = math.inf,
    on_words: Callable[[list[Word]], None] = lambda words: None,
) -> FileTranscript:
    """Decode ``source`` in a thread, window by window, with at most ``windowing.in_flight`` windows queued at
    once; ``recognise`` turns a window's mono waveform at ``sample_rate`` into its transcript, and ``on_words``
    is told the words each window adds, in order, as soon as they are final.

    A file longer than ``max_seconds`` raises :class:`asr.audio.AudioTooLong`: before decoding where its
    container says how long it is, otherwise as soon as decoding gets there.
    """
    started = time.perf_counter()
    cut = windows(stream(source, max_seconds), windowing.seconds, windowing.overlap_seconds)
    pending: list[tuple[Window, asyncio.Task]] = []
    words: list[Word] = []
    duration = 0.0
    count = 0

    def prepared() -> tuple[Window, torch.Tensor] | None:
        window = next(cut, None)
        return None if window is None else (window, resample(window.waveform[0], window.sample_rate, sample_rate))

    def keep(window: Window, transcript: Transcript) -> None:
        if kept := kept_words(window, transcript, words[-1].end if words else -math.inf):
            words.extend(kept)
            on_words(kept)

    try:
        while (item := await asyncio.to_thread(prepared)) is not None:
            window, mono = item
            count += 1
            duration = window.start + window.waveform.shape[-1] / window.sample_rate
            pending.append((window, asyncio.ensure_future(recognise(mono))))
            if len(pending) == windowing.in_flight:
                await asyncio.wait([pending[0][1]])
            while pending and pending[0][1].done():  # words as soon as they are final (streamed responses)
                done, task = pending.pop(0)
                keep(done, task.result())
        for done, task in pending:
            keep(done, await task)
    finally:
        for _, task in pending:
            task.cancel()
    if count == 0:
        raise AudioDecodeError("the audio holds no samples")
    if count > 1:
        seconds = time.perf_counter() - started
        log.info(
            "long file %s: %.1f s of audio in %d windows, %.1f s (%.1fx real time)",
            name,
            duration,
            count,
            seconds,
            duration / seconds,
        )
    return FileTranscript(Transcript(" ".join(w.word for w in words), words), duration, count)

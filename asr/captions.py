"""Caption formats, SubRip and WebVTT, from timed segments: for the service's OpenAI-compatible API
and for the ``asr`` command-line client, which must start without loading PyTorch."""

from __future__ import annotations

from collections.abc import Sequence

from asr.transcript import Segment


def _clock(seconds: float, separator: str) -> str:
    milliseconds = round(seconds * 1000)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    seconds, milliseconds = divmod(milliseconds, 1000)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{milliseconds:03d}"


def srt(segments: Sequence[Segment]) -> str:
    return "".join(
        f"{n}\n{_clock(s.start, ',')} --> {_clock(s.end, ',')}\n{s.text}\n\n" for n, s in enumerate(segments, 1)
    )


def vtt(segments: Sequence[Segment]) -> str:
    return "WEBVTT\n\n" + "".join(f"{_clock(s.start, '.')} --> {_clock(s.end, '.')}\n{s.text}\n\n" for s in segments)

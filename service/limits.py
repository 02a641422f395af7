"""What one client may cost: the bounds on files, streams, request options and uploads, in one place.

The bounds that are settings take their values (and defaults) from :class:`service.settings.Settings`;
those that a setting would only invite to harm are constants here. :mod:`service.body` enforces the
upload's, :mod:`service.connections` the connection's own (count, head size and time).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HOTWORDS = 100
MAX_HOTWORDS_TEXT = 8192
"""Characters of hotword text in all (each entry counts one more), checked before any of it is normalised."""
MAX_ALTERNATIVES = 10
"""Hypotheses a stream's result may list (Vosk's ``max_alternatives``)."""


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    body_timeout_seconds: float
    """The longest pause in a body, and the time after which its pace is checked."""
    min_bytes_per_second: float


@dataclass(frozen=True)
class FileLimits:
    max_seconds: float
    """The longest file, in seconds of audio."""
    timeout_seconds: float
    """The deadline of one file's transcription."""
    max_queue: int
    """Clips waiting for the model beyond which new files are refused (503)."""


@dataclass(frozen=True)
class StreamLimits:
    max_streams: int
    idle_seconds: float
    """A stream that sends nothing this long is closed."""
    max_message_bytes: int
    max_queue: int
    """Clips waiting for the model beyond which partial reads are skipped (finals never are)."""

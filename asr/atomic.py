"""Files written whole or not at all: what a run killed mid-write must never leave half-written."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replaced(path: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write; it replaces ``path`` (one rename) when the block succeeds.

    ``suffix`` ends the temporary name, for writers that choose a format by extension (``.tmp.flac``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + suffix)
    try:
        yield temporary
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)

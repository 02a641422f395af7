"""Files written whole or not at all: what a run killed mid-write must never leave half-written."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replaced(path: Path | str, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` to write; it replaces ``path`` (one rename) when the block succeeds.

    ``suffix`` ends the temporary name, for writers that choose a format by extension (``.tmp.flac``). The name
    holds the process id: two processes writing the same file (a corpus's workers rendering one shared clip) each
    write their own and the last rename wins, where one name would be moved away under the other's feet.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}{suffix}")
    try:
        yield temporary
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)

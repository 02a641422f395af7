"""Keep the server's resident memory flat under a long, mixed load (on glibc; elsewhere a no-op).

Tensors and decoded audio change size with every batch and file. glibc serves them from heaps that
fragment, and it gives freed pages back to the OS only from a heap's top: a 10-minute soak
(``bench/soak.py``) grew the server from 0.6 to 1.6 GB. ``malloc_trim`` returns every whole free
page, wherever it lies, so the service calls it once a second: the same soak then ended at 0.7 GB,
and long files ran as fast as before. A fixed mmap threshold of 1 MiB, the other cure, kept memory
flat too but cost 12-20% of that speed.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

TRIM_EVERY_SECONDS = 1.0


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl, macOS: other allocators, other habits
        return None


async def trim_forever(every: float = TRIM_EVERY_SECONDS) -> None:
    """Give the heap's free pages back to the OS every ``every`` seconds, until cancelled."""
    if (trim := _malloc_trim()) is None:
        return
    while True:
        await asyncio.sleep(every)
        await asyncio.to_thread(trim, 0)

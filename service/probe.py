"""``python -m service.probe URL``: exit 0 if URL answers 200, else 1. Docker's HEALTHCHECK runs it.

It imports nothing heavy (no torch), because the health check runs every few seconds.
"""

from __future__ import annotations

import sys
import urllib.request


def probe(url: str, timeout: float = 5) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError as error:  # refused, timed out, or an HTTP error status
        print(f"{url}: {error}", file=sys.stderr)
        return False


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m service.probe URL")
    sys.exit(0 if probe(sys.argv[1]) else 1)

"""``python -m service.probe /health`` (or a whole URL): exit 0 if it answers 200, else 1. Docker's HEALTHCHECK runs it.

A path is asked of this host at ``$ASR_PORT``, so the check follows the port the server was given. It imports
nothing heavy (no torch), because the health check runs every few seconds.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def target(path_or_url: str) -> str:
    if "://" in path_or_url:
        return path_or_url
    if "ASR_PORT" not in os.environ:
        sys.exit("service.probe: give a whole URL, or set ASR_PORT for a path")
    return f"http://127.0.0.1:{os.environ['ASR_PORT']}{path_or_url}"


def probe(url: str, timeout: float = 5) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError as error:  # refused, timed out, or an HTTP error status
        print(f"{url}: {error}", file=sys.stderr)
        return False


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m service.probe PATH|URL")
    sys.exit(0 if probe(target(sys.argv[1])) else 1)

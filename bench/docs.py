"""Figures that benchmarks write into the docs, between HTML-comment markers, so that no table outlives the run
that measured it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The begin and end comments of the block that ``name`` writes."""
    return f"<!-- {name}: begin -->", f"<!-- {name}: end -->"


def replace_blocks(path: Path, blocks: list[tuple[str, str, str]]) -> None:
    """Put each ``(begin, end, text)``'s text, markers included, where that block stands in ``path``; a file with
    none of the blocks is a mistake in the command, so it stops the benchmark."""
    text, found = path.read_text(), 0
    for begin, end, block in blocks:
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
        text, count = pattern.subn(lambda _, block=block: block, text)
        found += count
    if not found:
        raise SystemExit(f"{path} has no {' or '.join(begin for begin, _, _ in blocks)} block to replace")
    path.write_text(text)


def digest(path: Path) -> str:
    """The file's SHA-256, shortened: how a block names the model or LM it measured."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def measured_on(checkpoint: Path, lm: Path) -> str:
    return f"`{checkpoint.name}` (sha256 {digest(checkpoint)}) and `{lm.name}` (sha256 {digest(lm)})"

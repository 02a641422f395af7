"""Natural English sentences from an offline source: Debian's fortunes files.

Entries are split into sentences, normalised to the model's alphabet, filtered to a
speakable length and deduplicated, in a fixed order, so a seed picks the same text anywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

from asr.text import ABBREVIATIONS, normalise

FORTUNES = Path("/usr/share/games/fortunes")
SKIPPED_FILES = {"art", "ascii-art", "debian", "linux", "linuxcookie", "perl", "computers", "definitions"}
"""Pictures, code and jargon: hard to speak, harder to hear."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_ABBREVIATION = re.compile(r"\b(" + "|".join(ABBREVIATIONS) + r")\.(?=\s)", re.IGNORECASE)
_NOT_PROSE = re.compile(r"[|_\\/<>{}\[\]#*=~^@]|^\s*--|:\s*$")


def _entries(folder: Path) -> list[str]:
    entries = []
    for path in sorted(folder.iterdir()):
        if path.suffix or not path.is_file() or path.name in SKIPPED_FILES:
            continue
        text = path.read_text(encoding="latin-1")
        entries += [entry for entry in text.split("\n%\n") if entry.strip()]
    return entries


def sentences_from(entries: list[str], min_words: int = 4, max_words: int = 20) -> list[str]:
    """Normalised, deduplicated sentences of ``min_words`` to ``max_words`` words, in first-seen order."""
    seen: dict[str, None] = {}
    for entry in entries:
        lines = [line for line in entry.splitlines() if not _NOT_PROSE.search(line)]
        prose = _ABBREVIATION.sub("\\1\0", " ".join(" ".join(lines).split()))  # "Dr." ends no sentence
        for sentence in _SENTENCE_END.split(prose):
            words = normalise(sentence.replace("\0", "."))
            if min_words <= len(words.split()) <= max_words:
                seen.setdefault(words, None)
    return list(seen)


def fortune_sentences(folder: Path = FORTUNES) -> list[str]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found (Debian: apt-get install fortunes)")
    return sentences_from(_entries(folder))

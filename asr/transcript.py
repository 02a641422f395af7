"""What recognition returns: words with times and confidences, transcripts, and caption-sized segments.

Free of PyTorch, so that the ``asr`` command-line client shares these types and starts in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    """Seconds from the start of the audio to the first frame of the word's first letter."""
    end: float
    """Seconds to the end of the last frame of the word's last letter."""
    confidence: float
    """The product of the word's letters' peak posteriors: how likely every letter is right."""
    letter_logprobs: tuple[float, ...] = ()
    """Each letter's peak log posterior on the decoded path (OpenAI's ``logprobs``), whatever ``confidence`` became."""
    space_logprob: float | None = None
    """That of the space before the word, for a word after another."""


@dataclass(frozen=True)
class Transcript:
    text: str
    words: list[Word] = field(default_factory=list)
    confidence: float | None = None
    """For beam search's alternatives: this hypothesis's share of the final beam's probability."""


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)


def segment(words: list[Word], max_pause: float = 0.8, max_seconds: float = 15.0) -> list[Segment]:
    """Group words into caption-sized segments, breaking at pauses and before a segment grows too long."""
    groups: list[list[Word]] = []
    for word in words:
        if groups and word.start - groups[-1][-1].end < max_pause and word.end - groups[-1][0].start <= max_seconds:
            groups[-1].append(word)
        else:
            groups.append([word])
    return [Segment(g[0].start, g[-1].end, " ".join(w.word for w in g), g) for g in groups]

"""Error rates: edit distance over characters (CER) and words (WER)."""

from __future__ import annotations

from collections.abc import Sequence

from torchaudio.functional import edit_distance


def error_rate(references: list[Sequence], hypotheses: list[Sequence]) -> float:
    """Total edits over total reference length, the corpus-level rate (not a mean of rates)."""
    edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True))
    return edits / max(1, sum(len(r) for r in references))


def cer(references: list[str], hypotheses: list[str]) -> float:
    return error_rate(references, hypotheses)


def wer(references: list[str], hypotheses: list[str]) -> float:
    return error_rate([r.split() for r in references], [h.split() for h in hypotheses])

"""Error rates: edit distance over characters (CER) and words (WER)."""

from __future__ import annotations

from collections.abc import Sequence


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance: substitutions, insertions and deletions all cost one."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def error_rate(references: list[Sequence], hypotheses: list[Sequence]) -> float:
    """Total edits over total reference length, the corpus-level rate (not a mean of rates)."""
    edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses, strict=True))
    return edits / max(1, sum(len(r) for r in references))


def cer(references: list[str], hypotheses: list[str]) -> float:
    return error_rate(references, hypotheses)


def wer(references: list[str], hypotheses: list[str]) -> float:
    return error_rate([r.split() for r in references], [h.split() for h in hypotheses])

"""CTC decoding from log-probabilities to text, word timings and word confidences."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from asr.text import ALPHABET, BLANK, NUM_CLASSES, SPACE
from asr.transcript import Transcript, Word

PAUSE_SECONDS = 1.0
"""A stretch this long without a letter ends a word. Transcripts never end in a space, so a model may go from one
utterance's last letter through seconds of blanks to the next one's first, and "door" and "turn" become one word.
Shorter stretches occur inside words: at 0.5 s, a model trained on four clips split one of its words."""
CERTAIN_SPACE = torch.full((NUM_CLASSES,), -1e4).index_fill_(0, torch.tensor([SPACE]), 0.0)
"""A frame's log-probabilities that say "space" for certain."""


@dataclass(frozen=True)
class Greedy:
    """Best-path decoding, the peer of :class:`asr.beam.Beam`: each frame's likeliest symbol, in microseconds,
    spelling what it hears (no LM, one transcript)."""


def mark_pauses(log_probs: torch.Tensor, frame_seconds: float) -> torch.Tensor:
    """``(frames, classes)`` log-probabilities with the middle frame of each pause (:data:`PAUSE_SECONDS` of frames
    whose likeliest symbol is no letter) made a certain space, so that both decoders end a word there."""
    best = log_probs.argmax(-1)
    quiet = torch.cat((torch.tensor([0]), ((best == BLANK) | (best == SPACE)).int().cpu(), torch.tensor([0])))
    edges = torch.diff(quiet)
    starts, ends = torch.nonzero(edges == 1).flatten(), torch.nonzero(edges == -1).flatten()
    long = ends - starts >= math.ceil(PAUSE_SECONDS / frame_seconds)
    if not long.any():
        return log_probs
    marked = log_probs.clone()
    marked[(starts[long] + ends[long]) // 2] = CERTAIN_SPACE.to(marked)
    return marked


def greedy_decode(log_probs: torch.Tensor, frame_seconds: float, duration: float | None = None) -> Transcript:
    """Best-path CTC decoding of one utterance's ``(frames, classes)`` log-probabilities."""
    values, labels = mark_pauses(log_probs.detach().float().cpu(), frame_seconds).max(dim=-1)
    words = path_words(labels.numpy(), values.exp().numpy(), frame_seconds, duration)
    return Transcript(" ".join(w.word for w in words), words)


def path_words(
    labels: np.ndarray, posteriors: np.ndarray, frame_seconds: float, duration: float | None = None
) -> list[Word]:
    """The words a frame-by-frame CTC label path spells, with ``posteriors`` of each frame's label.

    Each run of identical labels is one emitted symbol (blanks emit nothing); a letter's time
    span is its run and its confidence the run's peak posterior. The last frame may reach past
    the audio's end; with ``duration``, word ends are clipped to it.
    """
    if labels.size == 0:
        return []
    starts = np.concatenate(([0], np.flatnonzero(np.diff(labels)) + 1))
    ends = np.concatenate((starts[1:], [labels.size]))
    run_peaks = np.maximum.reduceat(posteriors, starts)

    words: list[Word] = []
    letters: list[str] = []
    logprobs: list[float] = []
    first = last = 0
    confidence = 1.0
    space = 0.0
    """The best log posterior of the spaces since the last word."""

    def close_word() -> None:
        if letters:
            end = last * frame_seconds if duration is None else min(last * frame_seconds, duration)
            space_before = space if words else None
            words.append(Word("".join(letters), first * frame_seconds, end, confidence, tuple(logprobs), space_before))

    for start, end, label, peak in zip(starts, ends, labels[starts], run_peaks, strict=True):
        if label == BLANK:
            continue
        if label == SPACE:
            close_word()
            space = max(space, _log(peak)) if not letters else _log(peak)
            letters, logprobs = [], []
            continue
        if not letters:
            first, confidence = int(start), 1.0
        letters.append(ALPHABET[label - 1])
        logprobs.append(_log(peak))
        last = int(end)
        confidence *= float(peak)
    close_word()
    return words


def _log(posterior: float) -> float:
    return math.log(max(float(posterior), 1e-30))


def greedy_decode_batch(
    log_probs: torch.Tensor, lengths: torch.Tensor, frame_seconds: float, durations: list[float] | None = None
) -> list[Transcript]:
    """:func:`greedy_decode` for each utterance of a padded ``(batch, frames, classes)`` tensor."""
    durations = durations or [None] * len(log_probs)
    return [
        greedy_decode(lp[:n], frame_seconds, d) for lp, n, d in zip(log_probs, lengths.tolist(), durations, strict=True)
    ]

"""Fitting the decoder to a dev split: LM weights by grid search, word confidences by logistic regression.

The acoustic model runs once per utterance; every point of the grid decodes the same cached
log-probabilities: 400 dev utterances (21 minutes of audio) take about 12 s a point on 2 cores.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from asr.beam import LM_DEFAULTS, Beam, BeamDecoder
from asr.language_model import Calibration
from asr.transcript import Transcript
from training.metrics import cer, wer


@dataclass(frozen=True)
class GridPoint:
    alpha: float
    beta: float
    cer: float
    wer: float


def grid_search(
    decoder: BeamDecoder,
    log_probs: list[torch.Tensor],
    references: list[str],
    frame_seconds: float,
    alphas: list[float],
    betas: list[float],
    beam_size: int,
) -> list[GridPoint]:
    """WER and CER at every (alpha, beta)."""
    points = []
    for alpha, beta in tqdm(list(itertools.product(alphas, betas)), desc="alpha x beta", unit="point"):
        options = Beam(beam_size=beam_size, alpha=alpha, beta=beta)
        hypotheses = [decoder.decode(lp, frame_seconds, options=options)[0].text for lp in log_probs]
        points.append(GridPoint(alpha, beta, cer(references, hypotheses), wer(references, hypotheses)))
    return points


def best_point(grid: list[GridPoint]) -> GridPoint:
    """The lowest WER, then the lowest CER."""
    return min(grid, key=lambda p: (p.wer, p.cer))


def word_evidence(
    decoder: BeamDecoder,
    log_probs: list[torch.Tensor],
    references: list[str],
    frame_seconds: float,
    options: Beam = LM_DEFAULTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Every best-hypothesis word's evidence (rows of :class:`Calibration` inputs) and whether it is right."""
    evidence, outcomes = [], []
    for lp, reference in zip(tqdm(log_probs, desc="word evidence", unit="utt"), references, strict=True):
        best = decoder.hypotheses(lp, frame_seconds, options=options)[0]
        evidence += best.evidence
        outcomes += word_outcomes(reference, best.transcript)
    return np.array(evidence, dtype=np.float64).reshape(-1, 2), np.array(outcomes, dtype=np.float64)


def word_outcomes(reference: str, transcript: Transcript) -> list[bool]:
    """For each hypothesis word, whether a minimum-edit alignment matches it to the same reference word."""
    ref, hyp = reference.split(), [w.word for w in transcript.words]
    cost = np.zeros((len(ref) + 1, len(hyp) + 1), dtype=np.int32)
    cost[:, 0], cost[0, :] = np.arange(len(ref) + 1), np.arange(len(hyp) + 1)
    for i, j in itertools.product(range(1, len(ref) + 1), range(1, len(hyp) + 1)):
        cost[i, j] = min(cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    correct = [False] * len(hyp)
    i, j = len(ref), len(hyp)
    while i and j:
        if cost[i, j] == cost[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            correct[j - 1] = ref[i - 1] == hyp[j - 1]
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i, j - 1] + 1:
            j -= 1
        else:
            i -= 1
    return correct


def fit_calibration(evidence: np.ndarray, outcomes: np.ndarray, steps: int = 200) -> Calibration:
    """Logistic regression (Newton's method, a little L2) of word correctness on the decoder's evidence."""
    inputs = np.array([Calibration.inputs(tuple(row)) for row in evidence]).reshape(-1, 2)
    x = np.hstack((inputs, np.ones((len(inputs), 1))))
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        gradient = x.T @ (p - outcomes) + 1e-3 * w
        hessian = (x.T * (p * (1 - p))) @ x + 1e-3 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return Calibration(tuple(float(v) for v in w))


def reliability(confidences: np.ndarray, outcomes: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """Per confidence bin: mean confidence, accuracy and word count (bins with no words left out)."""
    which = np.minimum((confidences * bins).astype(int), bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        if members.any():
            rows.append((float(confidences[members].mean()), float(outcomes[members].mean()), int(members.sum())))
    return rows


def expected_calibration_error(confidences: np.ndarray, outcomes: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their share of words."""
    return sum(
        n * abs(accuracy - confidence) for confidence, accuracy, n in reliability(confidences, outcomes, bins)
    ) / len(outcomes)


def calibration_report(shares: np.ndarray, calibrated: np.ndarray, outcomes: np.ndarray) -> dict[str, float]:
    """What the bundle records of its word confidences: how many words, how many right, and both errors."""
    return {
        "words": len(outcomes),
        "accuracy": round(float(outcomes.mean()), 4),
        "ece_uncalibrated": round(expected_calibration_error(shares, outcomes), 4),
        "ece": round(expected_calibration_error(calibrated, outcomes), 4),
    }

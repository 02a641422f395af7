"""Corpus splits as the benchmarks read them."""

from __future__ import annotations

from pathlib import Path

import torch

from asr import audio
from asr.features import prepare_waveform
from training.data import read_transcripts


def corpus_split(folder: Path, limit: int | None = None) -> tuple[list[torch.Tensor], list[str]]:
    """A corpus split's first ``limit`` recordings as 16 kHz mono waveforms, and their transcripts."""
    items = read_transcripts(folder)[:limit]
    return [prepare_waveform(*audio.decode(path)) for _, path, _ in items], [text for _, _, text in items]

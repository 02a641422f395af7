"""Reading corpora in the LibriSpeech layout and batching them by length."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from asr.audio import decode
from asr.features import FeatureConfig, features
from asr.text import encode, normalise


@dataclass(frozen=True)
class Example:
    id: str
    features: torch.Tensor
    """``(n_mels, frames)``"""
    text: str
    targets: torch.Tensor


def read_transcripts(root: Path) -> list[tuple[str, Path, str]]:
    """``(id, audio path, normalised text)`` for every line of every ``*.trans.txt`` under ``root``."""
    items = []
    for listing in sorted(root.rglob("*.trans.txt")):
        for line in listing.read_text().splitlines():
            if not line.strip():
                continue
            utterance_id, _, text = line.partition(" ")
            audio = next(
                (p for p in (listing.parent / f"{utterance_id}{s}" for s in (".flac", ".wav")) if p.exists()), None
            )
            if audio is None:
                raise FileNotFoundError(f"{listing}: no audio file for {utterance_id}")
            items.append((utterance_id, audio, normalise(text)))
    if not items:
        raise FileNotFoundError(f"no *.trans.txt transcripts under {root}")
    return items


def load_examples(root: Path, config: FeatureConfig) -> list[Example]:
    """Decode and featurise a whole (small) corpus into memory."""
    examples = []
    for utterance_id, path, text in tqdm(read_transcripts(root), desc=f"features {root.name}", unit="utt", leave=False):
        waveform, rate = decode(path)
        examples.append(Example(utterance_id, features(waveform, rate, config), text, torch.tensor(encode(text))))
    return examples


def length_buckets(examples: list[Example], max_frames: int, rng: random.Random) -> list[list[Example]]:
    """Batches of similar length holding at most ``max_frames`` padded frames, in random order.

    Sorting by length before cutting keeps padding small; shuffling within equal lengths
    and then the batches keeps epochs different.
    """
    ordered = sorted(examples, key=lambda e: (e.features.shape[-1], rng.random()))
    batches, current = [], []
    for example in ordered:
        if current and (len(current) + 1) * example.features.shape[-1] > max_frames:
            batches.append(current)
            current = []
        current.append(example)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches

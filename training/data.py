"""Speech corpora in the LibriSpeech layout, read lazily and batched by length.

A corpus is a list of :class:`Recording` (id, audio path, text, length in feature frames):
small enough to hold for LibriSpeech's 960 hours. Audio is decoded and featurised only when a
batch is drawn, in DataLoader workers, so memory is bounded by the batches in flight, not by
the corpus.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import soundfile
import torch
from torch.utils.data import DataLoader, Dataset
from torchaudio.datasets import LIBRISPEECH
from tqdm import tqdm

from asr.audio import AudioDecodeError, decode
from asr.features import FeatureConfig, features, num_frames, pad_batch
from asr.text import encode, normalise

LIBRISPEECH_SUBSETS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)
LIBRISPEECH_FOLDER = "LibriSpeech"
"""The folder the official archives unpack into, under the root given to the loader."""


@dataclass(frozen=True)
class Recording:
    id: str
    path: Path
    text: str
    """Normalised to the model's alphabet."""
    frames: int
    """Feature frames, known from the file header before decoding, so batches can be cut by length."""


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


def read_manifest(path: Path) -> list[tuple[str, Path, str]]:
    """``(id, audio path, normalised text)`` for each ``audio path TAB reference`` line of a ``manifest.tsv``.

    Ids are ``FOLDER/STEM``: a recording's folder names its source (the real dev set keeps one per package)."""
    items = []
    for line in path.read_text().splitlines():
        if line.strip():
            audio, _, reference = line.partition("\t")
            audio = Path(audio) if Path(audio).is_absolute() else path.parent / audio
            if not audio.exists():
                raise FileNotFoundError(f"{path}: {audio} does not exist")
            items.append((f"{audio.parent.name}/{audio.stem}", audio, normalise(reference)))
    if not items:
        raise FileNotFoundError(f"{path} lists no recordings")
    return items


def read_librispeech(root: Path, subset: str, download: bool = False) -> list[tuple[str, Path, str]]:
    """One official subset through torchaudio's ``LIBRISPEECH`` (which also downloads it)."""
    if not download and not (Path(root) / LIBRISPEECH_FOLDER / subset).is_dir():
        raise FileNotFoundError(f"{Path(root) / LIBRISPEECH_FOLDER / subset} does not exist: download {subset} there")
    dataset = LIBRISPEECH(root, url=subset, folder_in_archive=LIBRISPEECH_FOLDER, download=download)
    items = []
    for n in range(len(dataset)):
        relative, _, transcript, *_ = dataset.get_metadata(n)
        path = Path(root) / LIBRISPEECH_FOLDER / relative
        items.append((path.stem, path, normalise(transcript)))
    return items


def _frames(path: Path, config: FeatureConfig) -> int:
    info = soundfile.info(path)
    return num_frames(round(info.frames * config.sample_rate / info.samplerate), config)


def recordings(items: Sequence[tuple[str, Path, str]], config: FeatureConfig, desc: str = "") -> list[Recording]:
    """Attach each item's length, read from file headers on a few threads (it is I/O, not compute)."""
    with ThreadPoolExecutor(8) as pool:
        lengths = list(
            tqdm(
                pool.map(lambda item: _frames(item[1], config), items),
                total=len(items),
                desc=f"lengths {desc}".strip(),
                unit="file",
                leave=False,
            )
        )
    return [Recording(id, path, text, frames) for (id, path, text), frames in zip(items, lengths, strict=True)]


def load(
    sources: Iterable[str | Path], config: FeatureConfig, librispeech_root: Path | None = None, download: bool = False
) -> list[Recording]:
    """Every recording of ``sources``: LibriSpeech subset names (under ``librispeech_root``), folders in the
    LibriSpeech layout, or folders holding a ``manifest.tsv`` of audio paths and references."""
    items = []
    for source in sources:
        if str(source) in LIBRISPEECH_SUBSETS:
            if librispeech_root is None:
                raise ValueError(f"{source} is a LibriSpeech subset: give the folder that holds (or will hold) it")
            items += read_librispeech(librispeech_root, str(source), download)
        elif (Path(source) / "manifest.tsv").is_file():
            items += read_manifest(Path(source) / "manifest.tsv")
        elif Path(source).is_dir():
            items += read_transcripts(Path(source))
        else:
            raise FileNotFoundError(
                f"{source} is neither a folder nor a LibriSpeech subset ({', '.join(LIBRISPEECH_SUBSETS)})"
            )
    return recordings(items, config, desc=", ".join(map(str, sources)))


class FeatureDataset(Dataset):
    """``(features, targets)`` of one recording, computed when asked for."""

    def __init__(self, recordings: Sequence[Recording], config: FeatureConfig):
        self.recordings, self.config = recordings, config

    def __len__(self) -> int:
        return len(self.recordings)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        recording = self.recordings[index]
        try:
            waveform, rate = decode(recording.path)
        except AudioDecodeError as error:  # it stops a run, so say which of thousands of files did
            raise AudioDecodeError(f"{recording.path}: {error}") from None
        return features(waveform, rate, self.config), torch.tensor(encode(recording.text), dtype=torch.long)


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """``(features, lengths, concatenated targets, target lengths)``, what CTC training consumes."""
    feats, lengths = pad_batch([f for f, _ in items])
    targets = [t for _, t in items]
    return feats, lengths, torch.cat(targets), torch.tensor([len(t) for t in targets])


def batches(dataset: FeatureDataset, plan: Sequence[Sequence[int]], workers: int | None = None) -> DataLoader:
    """Collated batches in ``plan``'s order (lists of recording indices), prepared ``workers`` at a time.

    Workers are spawned rather than forked: a fork taken after torch has started its thread
    pool can deadlock in the child's first torch call. The loader draws its worker seed from a
    generator of its own: from the global one, it would shift dropout after an exact resume.
    """
    workers = min(4, (os.cpu_count() or 1)) if workers is None else workers
    return DataLoader(
        dataset,
        batch_sampler=plan,
        num_workers=workers,
        collate_fn=collate,
        multiprocessing_context="spawn" if workers else None,
        prefetch_factor=4 if workers else None,
        generator=torch.Generator(),
    )


def length_buckets(frames: Sequence[int], max_frames: int, rng: random.Random) -> list[list[int]]:
    """Indices cut into batches of similar length holding at most ``max_frames`` padded frames, in random order.

    Sorting by length before cutting keeps padding small; shuffling within equal lengths
    and then the batches keeps epochs different.
    """
    ordered = sorted(range(len(frames)), key=lambda i: (frames[i], rng.random()))
    plan, current = [], []
    for index in ordered:
        if current and (len(current) + 1) * frames[index] > max_frames:
            plan.append(current)
            current = []
        current.append(index)
    if current:
        plan.append(current)
    rng.shuffle(plan)
    return plan


def feature_statistics(dataset: FeatureDataset, limit: int = 2000, seed: int = 0) -> torch.Tensor:
    """``(n_mels, frames)`` features of up to ``limit`` random recordings, for the model's normalisation."""
    chosen = random.Random(seed).sample(range(len(dataset)), min(limit, len(dataset)))
    return torch.cat([dataset[i][0] for i in tqdm(chosen, desc="feature statistics", unit="utt", leave=False)], dim=1)

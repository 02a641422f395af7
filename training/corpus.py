"""Build a small speech corpus offline with espeak-ng, in the LibriSpeech folder layout.

``SPLIT/SPEAKER/CHAPTER/SPEAKER-CHAPTER-NNNN.flac`` plus ``SPEAKER-CHAPTER.trans.txt``, so
the LibriSpeech loader reads it unchanged, and ``manifest.jsonl`` with the voice and
settings of every utterance. The test split has unseen sentences spoken only by voices
of an accent that never occurs in train or dev. Each utterance's voice, rate, pitch and
volume derive from the seed and its index, so a build is deterministic, and files already
on disk are kept, so an interrupted build resumes.
"""

from __future__ import annotations

import json
import multiprocessing
import random
import shutil
import subprocess
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import soundfile
from tqdm import tqdm

from asr.audio import decode
from asr.features import FeatureConfig, prepare_waveform
from training.sentences import sentences

TRAIN_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-us-nyc"]
HELD_OUT_ACCENT = "en-029"
"""Caribbean English: spoken in the test split only."""
VARIANTS = ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3"]
SPLIT_CHAPTERS = {"train": 1, "dev": 2, "test": 3}


@dataclass(frozen=True)
class Utterance:
    id: str
    split: str
    voice: str
    text: str
    rate: int
    pitch: int
    amplitude: int

    def path(self, root: Path) -> Path:
        speaker, chapter, _ = self.id.split("-")
        return root / self.split / speaker / chapter / f"{self.id}.flac"


def _voices(accents: list[str]) -> list[str]:
    return [f"{accent}+{variant}" for accent in accents for variant in VARIANTS]


ALL_VOICES = _voices(TRAIN_ACCENTS) + _voices([HELD_OUT_ACCENT])
SPEAKER_IDS = {voice: 100 + i for i, voice in enumerate(ALL_VOICES)}


def plan(n_train: int, n_dev: int, n_test: int, seed: int) -> list[Utterance]:
    """Every utterance of the corpus: sentences never repeat across splits."""
    texts = sentences(n_train + n_dev + n_test, seed)
    splits = [
        ("train", texts[:n_train], _voices(TRAIN_ACCENTS)),
        ("dev", texts[n_train : n_train + n_dev], _voices(TRAIN_ACCENTS)),
        ("test", texts[n_train + n_dev :], _voices([HELD_OUT_ACCENT])),
    ]
    counters: dict[tuple[int, int], int] = defaultdict(int)
    utterances = []
    for split, split_texts, voices in splits:
        for index, text in enumerate(split_texts):
            rng = random.Random(f"{seed}/{split}/{index}")
            voice = rng.choice(voices)
            speaker, chapter = SPEAKER_IDS[voice], SPLIT_CHAPTERS[split]
            number = counters[speaker, chapter]
            counters[speaker, chapter] += 1
            utterances.append(
                Utterance(
                    f"{speaker}-{chapter}-{number:04d}",
                    split,
                    voice,
                    text,
                    rate=rng.randint(130, 210),
                    pitch=rng.randint(25, 75),
                    amplitude=rng.randint(60, 160),
                )
            )
    return utterances


def synthesise(utterance: Utterance) -> bytes:
    """espeak-ng's WAV for one utterance."""
    command = [
        "espeak-ng",
        "-v",
        utterance.voice,
        "-s",
        str(utterance.rate),
        "-p",
        str(utterance.pitch),
        "-a",
        str(utterance.amplitude),
        "--stdout",
        utterance.text,
    ]
    return subprocess.run(command, check=True, capture_output=True).stdout


def _write(job: tuple[Utterance, Path]) -> tuple[str, float]:
    utterance, root = job
    path = utterance.path(root)
    if not path.exists():
        waveform, rate = decode(synthesise(utterance))
        config = FeatureConfig()
        audio = prepare_waveform(waveform, rate, config).numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.flac")
        soundfile.write(temporary, audio, config.sample_rate, subtype="PCM_16")
        temporary.replace(path)
    return utterance.id, soundfile.info(path).duration


def build(root: Path, n_train: int, n_dev: int, n_test: int, seed: int = 0, jobs: int = 2) -> Path:
    """Write the corpus under ``root`` and return its manifest's path."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    utterances = plan(n_train, n_dev, n_test, seed)
    # Spawned, not forked, workers: a fork taken after torch has started its thread pool
    # (as in any process that already ran a model) deadlocks inside the first torch call.
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        durations = dict(
            tqdm(
                pool.imap_unordered(_write, [(u, root) for u in utterances], chunksize=8),
                total=len(utterances),
                desc="synthesising",
                unit="utt",
            )
        )
    chapters: dict[Path, list[Utterance]] = defaultdict(list)
    for utterance in utterances:
        chapters[utterance.path(root).parent].append(utterance)
    for folder, members in chapters.items():
        speaker, chapter = folder.parent.name, folder.name
        lines = "".join(f"{u.id} {u.text.upper()}\n" for u in sorted(members, key=lambda u: u.id))
        (folder / f"{speaker}-{chapter}.trans.txt").write_text(lines)
    manifest = root / "manifest.jsonl"
    with manifest.open("w") as out:
        for utterance in utterances:
            out.write(json.dumps({**asdict(utterance), "duration": round(durations[utterance.id], 3)}) + "\n")
    return manifest

"""Build a speech corpus offline with text-to-speech, in the LibriSpeech folder layout.

``SPLIT/SPEAKER/CHAPTER/SPEAKER-CHAPTER-NNNN.flac`` plus ``SPEAKER-CHAPTER.trans.txt``, so the
LibriSpeech loader reads it unchanged, and ``manifest.jsonl`` with each utterance's voice, sex,
prosody and augmentation. Sentences never repeat across splits; the test split is spoken only
by held-out voices (by default of both sexes) that never occur in train or dev. Everything
about an utterance derives from the seed and its index, so a build is deterministic, and
files already on disk are kept, so an interrupted build resumes.
"""

from __future__ import annotations

import json
import multiprocessing
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import soundfile
import torch
from tqdm import tqdm

from asr.features import FeatureConfig, prepare_waveform
from training import augment, sentences, texts
from training.voices import Prosody, Voice, catalogue, synthesise

DEFAULT_HELD_OUT = ("festival:cmu_us_slt_arctic_hts", "flite:awb", "espeak-ng:en-029+f3", "espeak-ng:en-029+m3")
"""Test-only voices: two female, two male, from three engines."""
SPLIT_CHAPTERS = {"train": 1, "dev": 2, "test": 3}
ENGINE_WEIGHTS = {"espeak-ng": 0.4, "flite": 0.25, "festival": 0.2, "piper": 0.15}
"""Relative shares by engine within each sex: espeak-ng has 128 of the 137 voices but one way of
speaking, so voices are drawn sex first (half and half), then engine, then voice, which keeps the
few voices built from real speakers, and the female ones above all, well heard."""


@dataclass(frozen=True)
class AugmentConfig:
    """How often each effect is applied, and the ranges its parameters are drawn from."""

    rate: tuple[float, float] = (0.8, 1.25)
    pitch: tuple[float, float] = (-3.0, 3.0)
    """Semitones: with sox's formant-moving shift this also stands in for vocal-tract-length perturbation."""
    volume: tuple[float, float] = (0.4, 1.0)
    noise: float = 0.3
    snr_db: tuple[float, float] = (5.0, 30.0)
    speed: float = 0.2
    speed_factor: tuple[float, float] = (0.9, 1.1)
    reverb: float = 0.2
    rt60: tuple[float, float] = (0.2, 0.8)
    telephone: float = 0.1


@dataclass(frozen=True)
class Utterance:
    id: str
    split: str
    voice: str
    sex: str
    text: str
    prosody: Prosody
    effects: dict = field(default_factory=dict)
    """Effect name to its parameters, applied in this order after synthesis."""

    def path(self, root: Path) -> Path:
        speaker, chapter, _ = self.id.split("-")
        return root / self.split / speaker / chapter / f"{self.id}.flac"


def _draw_effects(rng: random.Random, config: AugmentConfig) -> dict:
    effects = {}
    if rng.random() < config.speed:
        effects["speed"] = {"factor": round(rng.uniform(*config.speed_factor), 3)}
    if rng.random() < config.reverb:
        effects["reverb"] = {"rt60": round(rng.uniform(*config.rt60), 3), "seed": rng.randrange(2**31)}
    if rng.random() < config.telephone:
        effects["telephone"] = {}
    if rng.random() < config.noise:
        effects["noise"] = {
            "snr_db": round(rng.uniform(*config.snr_db), 1),
            "colour": round(rng.uniform(0, 0.95), 2),
            "seed": rng.randrange(2**31),
        }
    return effects


def _choose_voice(rng: random.Random, voices: list[Voice]) -> Voice:
    sex = rng.choice(sorted({voice.sex for voice in voices}))
    voices = [voice for voice in voices if voice.sex == sex]
    engines = sorted({voice.engine for voice in voices})
    engine = rng.choices(engines, weights=[ENGINE_WEIGHTS[e] for e in engines])[0]
    return rng.choice([voice for voice in voices if voice.engine == engine])


def split_texts(text_source: str, n_train: int, n_dev: int, n_test: int, seed: int) -> dict[str, list[str]]:
    """Sentences per split: dev and test get unique unseen ones; train cycles through the rest if it must."""
    if text_source == "commands":
        pool = sentences.sentences(n_train + n_dev + n_test, seed)
    elif text_source == "fortunes":
        pool = texts.fortune_sentences()
        random.Random(seed).shuffle(pool)
    else:
        raise ValueError(f"unknown text source {text_source!r}: use fortunes or commands")
    if n_dev + n_test >= len(pool):
        raise ValueError(f"{text_source} has {len(pool)} sentences: too few for {n_dev} dev and {n_test} test")
    rest = pool[n_dev + n_test :]
    return {
        "dev": pool[:n_dev],
        "test": pool[n_dev : n_dev + n_test],
        "train": [rest[i % len(rest)] for i in range(n_train)],
    }


def plan(
    n_train: int,
    n_dev: int,
    n_test: int,
    seed: int = 0,
    text_source: str = "fortunes",
    voices: tuple[Voice, ...] | None = None,
    held_out: tuple[str, ...] = DEFAULT_HELD_OUT,
    config: AugmentConfig = AugmentConfig(),
) -> list[Utterance]:
    """Every utterance of the corpus, without synthesising anything."""
    voices = voices if voices is not None else catalogue()
    speaker_ids = {voice.id: 100 + i for i, voice in enumerate(voices)}
    unknown = sorted(set(held_out) - speaker_ids.keys())
    if unknown:
        raise ValueError(f"held-out voices not installed here: {', '.join(unknown)}")
    seen = [v for v in voices if v.id not in held_out]
    unseen = [v for v in voices if v.id in held_out]
    pools = {"train": seen, "dev": seen, "test": unseen}
    counters: dict[tuple[int, int], int] = defaultdict(int)
    utterances = []
    for split, split_texts_ in split_texts(text_source, n_train, n_dev, n_test, seed).items():
        for index, text in enumerate(split_texts_):
            rng = random.Random(f"{seed}/{split}/{index}")
            voice = _choose_voice(rng, pools[split])
            speaker, chapter = speaker_ids[voice.id], SPLIT_CHAPTERS[split]
            number = counters[speaker, chapter]
            counters[speaker, chapter] += 1
            prosody = Prosody(
                rate=round(rng.uniform(*config.rate), 3),
                pitch=round(rng.uniform(*config.pitch), 2),
                volume=round(rng.uniform(*config.volume), 3),
            )
            utterances.append(
                Utterance(
                    f"{speaker}-{chapter}-{number:04d}",
                    split,
                    voice.id,
                    voice.sex,
                    text,
                    prosody,
                    _draw_effects(rng, config),
                )
            )
    return utterances


def render(utterance: Utterance, voices: dict[str, Voice]) -> torch.Tensor:
    """The utterance's 16 kHz mono audio: synthesis, then its effects."""
    audio = prepare_waveform(*synthesise(voices[utterance.voice], utterance.text, utterance.prosody))
    for name, params in utterance.effects.items():
        if name == "speed":
            audio = augment.change_speed(audio, params["factor"])
        elif name == "reverb":
            audio = augment.reverberate(audio, params["rt60"], params["seed"])
        elif name == "telephone":
            audio = augment.band_limit(audio)
        elif name == "noise":
            audio = augment.add_noise(audio, params["snr_db"], params["seed"], params["colour"])
    peak = audio.abs().max()
    return audio * (0.99 / peak) if peak > 0.99 else audio


def _write(job: tuple[Utterance, Path]) -> tuple[str, float]:
    utterance, root = job
    path = utterance.path(root)
    if not path.exists():
        audio = render(utterance, {voice.id: voice for voice in catalogue()})
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp.flac")
        soundfile.write(temporary, audio.numpy(), FeatureConfig().sample_rate, subtype="PCM_16")
        temporary.replace(path)
    return utterance.id, soundfile.info(path).duration


def build(
    root: Path,
    n_train: int,
    n_dev: int,
    n_test: int,
    seed: int = 0,
    jobs: int = 2,
    text_source: str = "fortunes",
    held_out: tuple[str, ...] = DEFAULT_HELD_OUT,
) -> Path:
    """Write the corpus under ``root`` and return its manifest's path."""
    utterances = plan(n_train, n_dev, n_test, seed, text_source, held_out=held_out)
    # Spawned, not forked, workers: a fork taken after torch has started its thread pool
    # (as in any process that already ran a model) deadlocks inside the first torch call.
    with multiprocessing.get_context("spawn").Pool(jobs, initializer=torch.set_num_threads, initargs=(1,)) as pool:
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

"""Build a speech corpus offline with text-to-speech, in the LibriSpeech folder layout.

``SPLIT/SPEAKER/CHAPTER/SPEAKER-CHAPTER-NNNN.flac`` plus ``SPEAKER-CHAPTER.trans.txt``, so the
LibriSpeech loader reads it unchanged, and ``manifest.jsonl`` with each utterance's voice, sex,
prosody and augmentation. Sentences never repeat across splits; the test split is spoken only
by held-out voices (by default of both sexes) that never occur in train or dev. Everything
about an utterance derives from the seed and its index, so a build is deterministic, and
files already on disk are kept, so an interrupted build resumes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import math
import multiprocessing
import random
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import soundfile
import torch
from tqdm import tqdm

from asr.atomic import replaced
from asr.audio import decode
from asr.features import FeatureConfig, prepare_waveform
from training import augment, sentences, texts
from training.voices import (
    KOKORO_HELD_OUT,
    Prosody,
    Voice,
    accented_kokoro_voices,
    catalogue,
    kokoro_blends,
    more_kokoro_blends,
    synthesise,
)

NEUTRAL = Prosody()

DEFAULT_HELD_OUT = (
    "festival:cmu_us_slt_arctic_hts",
    "flite:awb",
    "espeak-ng:en-029+f3",
    "espeak-ng:en-029+m3",
    *(f"kokoro:{name}" for name in KOKORO_HELD_OUT + tuple(kokoro_blends(list(KOKORO_HELD_OUT), 1, seed=0))),
)
"""Test-only voices: four of the older engines' (two female, two male, from three engines), and
Kokoro's four held-out voices (one of each sex and accent) with one blend of them per sex."""
SPLIT_CHAPTERS = {"train": 1, "dev": 2, "test": 3}
ENGINE_WEIGHTS = {"kokoro": 0.4, "espeak-ng": 0.2, "flite": 0.15, "festival": 0.1, "piper": 0.15}
"""Relative shares by engine within each sex: espeak-ng has 128 voices but one way of speaking, so
voices are drawn sex first (half and half), then engine, then voice, which keeps the voices built
from real speakers well heard; Kokoro, the nearest to people, is heard most."""
RECORDED_NOISE = Path("/usr/share/games/frozen-bubble/snd")
NOISE_RECORDINGS = ("frozen-mainzik-1p", "frozen-mainzik-2p", "introzik", "applause", "snore")
"""Music and room sounds from Debian's frozen-bubble-data (three tracks, 13 minutes; applause; snoring)."""
BABBLE_ENGINES = ("espeak-ng", "flite", "piper")
"""Cheap voices for background talk, a few at once."""
QUIET_VOICE, QUIET_SPEAKER = "none:quiet", 99
"""Of the clips with no speech in them (:func:`_quiet`), transcribed as nothing."""


@dataclass(frozen=True)
class AugmentConfig:
    """How often each effect is applied, and the ranges its parameters are drawn from."""

    rate: tuple[float, float] = (0.8, 1.25)
    pitch: tuple[float, float] = (-3.0, 3.0)
    """Semitones: with sox's formant-moving shift this also stands in for vocal-tract-length perturbation."""
    volume: tuple[float, float] = (0.1, 1.0)
    """Drawn log-uniformly: people record quietly more often than loudly."""
    speed: float = 0.2
    speed_factor: tuple[float, float] = (0.9, 1.1)
    room: float = 0.35
    rt60: tuple[float, float] = (0.15, 0.8)
    room_size: tuple[tuple[float, float], ...] = ((3.0, 12.0), (2.5, 9.0), (2.4, 4.0))
    close_talk: float = 0.4
    """Of the rooms, the share with the microphone 10-50 cm from the mouth; the rest are 1-4 m away."""
    colour: float = 0.5
    noise: float = 0.45
    noise_kinds: tuple[tuple[str, float], ...] = (("gaussian", 0.3), ("recording", 0.35), ("babble", 0.35))
    snr_db: tuple[float, float] = (0.0, 30.0)
    codec: float = 0.2
    telephone: float = 0.1
    clip: float = 0.05
    dc: float = 0.05


NO_EFFECTS = AugmentConfig(speed=0, room=0, colour=0, noise=0, codec=0, telephone=0, clip=0, dc=0)
"""Prosody still varies: for evaluation sets of clean speech."""


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


def _point_in(rng: random.Random, size: list[float], margin: float = 0.5) -> list[float]:
    return [round(rng.uniform(margin, side - margin), 2) for side in size]


def _room(rng: random.Random, config: AugmentConfig) -> dict:
    size = [round(rng.uniform(*side), 2) for side in config.room_size]
    source = _point_in(rng, size)
    source[2] = round(rng.uniform(1.1, min(1.9, size[2] - 0.3)), 2)
    if rng.random() < config.close_talk:
        distance, direction = rng.uniform(0.1, 0.5), rng.uniform(0, 2 * math.pi)
        microphone = [source[0] + distance * math.cos(direction), source[1] + distance * math.sin(direction)]
        microphone = [round(min(max(c, 0.1), side - 0.1), 2) for c, side in zip(microphone, size[:2], strict=True)] + [
            source[2] - 0.1
        ]
    else:
        microphone = _point_in(rng, size)
    return {"size": size, "rt60": round(rng.uniform(*config.rt60), 3), "source": source, "microphone": microphone}


def _noise(rng: random.Random, config: AugmentConfig, babble: list[tuple[str, str]]) -> dict:
    kinds, weights = zip(*config.noise_kinds, strict=True)
    kind = rng.choices(kinds, weights=weights)[0]
    noise = {"kind": kind, "snr_db": round(rng.uniform(*config.snr_db), 1)}
    if kind == "gaussian":
        noise |= {
            "snr_db": max(5.0, noise["snr_db"]),
            "colour": round(rng.uniform(0, 0.95), 2),
            "seed": rng.randrange(2**31),
        }
    elif kind == "recording":
        noise |= {"file": rng.choice(NOISE_RECORDINGS), "start": round(rng.random(), 4)}
    else:
        noise |= {"talkers": [list(talker) for talker in rng.sample(babble, min(len(babble), rng.randint(3, 6)))]}
    return noise


def _quiet(rng: random.Random) -> dict:
    """What a clip without speech holds: digital silence, hiss, mains hum, or music, applause and snoring, from
    barely there to louder than quiet speech. It teaches the model that sound is not speech: without it, a
    model whose every clip spoke read faint noise as letters."""
    kind = rng.choice(("silence", "gaussian", "hum", "recording"))
    quiet = {"kind": kind, "seconds": round(rng.uniform(1.0, 8.0), 2), "dbfs": round(rng.uniform(-80.0, -25.0), 1)}
    if kind == "gaussian":
        quiet |= {"colour": round(rng.uniform(0, 0.95), 2), "seed": rng.randrange(2**31)}
    elif kind == "hum":
        quiet |= {"hz": rng.choice((50, 60)), "harmonics": rng.randint(1, 6)}
    elif kind == "recording":
        quiet |= {"file": rng.choice(NOISE_RECORDINGS), "start": round(rng.random(), 4)}
    return quiet


def _draw_effects(rng: random.Random, config: AugmentConfig, babble: list[tuple[str, str]]) -> dict:
    """Effect name to its parameters, in the order they apply: voice, room, microphone, noise, channel, level."""
    effects = {}
    if rng.random() < config.speed:
        effects["speed"] = {"factor": round(rng.uniform(*config.speed_factor), 3)}
    if rng.random() < config.room:
        effects["room"] = _room(rng, config)
    if rng.random() < config.colour:
        bands = [
            {
                "hz": round(math.exp(rng.uniform(math.log(100), math.log(6000)))),
                "db": round(rng.uniform(-8, 8), 1),
                "q": round(rng.uniform(0.5, 2.0), 2),
            }
            for _ in range(rng.randint(1, 3))
        ]
        effects["colour"] = {"bands": bands, "low_cut": round(rng.uniform(40, 300))}
    if rng.random() < config.noise:
        effects["noise"] = _noise(rng, config, babble)
    if rng.random() < config.telephone:
        effects["telephone"] = {"codec": rng.choice([None, "pcm_mulaw", "libopencore_amrnb"])}
    elif rng.random() < config.codec:
        codec, bitrates = rng.choice([("libmp3lame", (16, 64)), ("libopus", (8, 32)), ("aac", (24, 64))])
        effects["codec"] = {"name": codec, "bitrate": 1000 * rng.randint(*bitrates)}
    if rng.random() < config.clip:
        effects["clip"] = {"level": round(rng.uniform(0.2, 0.7), 2)}
    if rng.random() < config.dc:
        effects["dc"] = {"offset": round(rng.uniform(-0.05, 0.05), 3)}
    return effects


def _choose_voice(rng: random.Random, voices: list[Voice]) -> Voice:
    sex = rng.choice(sorted({voice.sex for voice in voices}))
    voices = [voice for voice in voices if voice.sex == sex]
    engines = sorted({voice.engine for voice in voices})
    engine = rng.choices(engines, weights=[ENGINE_WEIGHTS[e] for e in engines])[0]
    return rng.choice([voice for voice in voices if voice.engine == engine])


def _interleaved(names: list[str], seed: int) -> list[str]:
    """Each source's sentences shuffled, then taken in turn: every source is heard as often until it runs out."""
    shuffled = []
    for name in names:
        pool = list(texts.source(name))
        random.Random(seed).shuffle(pool)
        shuffled.append(pool)
    taken = (sentence for turn in itertools.zip_longest(*shuffled) for sentence in turn if sentence is not None)
    return list(dict.fromkeys(taken))


def split_texts(
    text_source: str, n_train: int, n_dev: int, n_test: int, seed: int, exclude: frozenset[str] = frozenset()
) -> dict[str, list[str]]:
    """Sentences per split: dev and test get unique unseen ones; train cycles through the rest if it must.

    ``text_source`` is ``commands`` (the vertical slice's grammar) or sources of :data:`training.texts.SOURCES`
    joined by ``+`` (``fortunes+chitchat``). ``exclude`` holds other corpora's dev and test sentences, which
    train must not speak: a new mixture of sources puts each sentence at a new place in the pool."""
    names = text_source.split("+")
    if text_source == "commands":
        pool = sentences.sentences(n_train + n_dev + n_test, seed)
    elif set(names) <= texts.SOURCES.keys():
        pool = _interleaved(names, seed)
    else:
        raise ValueError(f"unknown text source {text_source!r}: use commands, or {'+'.join(texts.SOURCES)} or a part")
    if n_dev + n_test >= len(pool):
        raise ValueError(f"{text_source} has {len(pool)} sentences: too few for {n_dev} dev and {n_test} test")
    rest = [sentence for sentence in pool[n_dev + n_test :] if sentence not in exclude]
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
    held_out: tuple[str, ...] = DEFAULT_HELD_OUT,
    config: AugmentConfig = AugmentConfig(),
    engines: tuple[str, ...] | None = None,
    exclude: frozenset[str] = frozenset(),
    blends: int = 0,
    accents: int = 0,
    quiet: int = 0,
) -> list[Utterance]:
    """Every utterance of the corpus, without synthesising anything.

    ``engines`` limits the voices to theirs (and the held-out voices to theirs); a voice keeps its
    speaker number either way. ``exclude``: sentences train must not speak (:func:`split_texts`).
    ``blends``: Kokoro training blends per sex beyond the catalogue's (:func:`more_kokoro_blends`); ``accents``:
    blends per sex with the other languages' voices, and those voices (:func:`accented_kokoro_voices`); ``quiet``:
    train clips without speech (:func:`_quiet`), with the effects of speech but for speed and added noise."""
    known = catalogue() + more_kokoro_blends(blends) + accented_kokoro_voices(accents)
    speaker_ids = {voice.id: 100 + i for i, voice in enumerate(known)}
    unknown = sorted(set(held_out) - speaker_ids.keys())
    if unknown:
        raise ValueError(f"held-out voices not installed here: {', '.join(unknown)}")
    voices = [voice for voice in known if engines is None or voice.engine in engines]
    seen = [v for v in voices if v.id not in held_out]
    unseen = [v for v in voices if v.id in held_out]
    pools = {"train": seen, "dev": seen, "test": unseen}
    texts_by_split = split_texts(text_source, n_train, n_dev, n_test, seed, exclude)
    babble_rng = random.Random(f"{seed}/babble")
    # Babble speaks with catalogue voices only: a worker renders talkers from the catalogue, not the extra blends.
    rendered = [v for v in seen if v in catalogue()]
    talkers = [v.id for v in rendered if v.engine in BABBLE_ENGINES] or [v.id for v in rendered]
    chatter = texts_by_split["train"][:5000] or texts_by_split["dev"] + texts_by_split["test"]
    babble = [(babble_rng.choice(talkers), text) for text in babble_rng.sample(chatter, min(200, len(chatter)))]
    counters: dict[tuple[int, int], int] = defaultdict(int)
    utterances = []
    for split, split_texts_ in texts_by_split.items():
        for index, text in enumerate(split_texts_):
            rng = random.Random(f"{seed}/{split}/{index}")
            voice = _choose_voice(rng, pools[split])
            speaker, chapter = speaker_ids[voice.id], SPLIT_CHAPTERS[split]
            number = counters[speaker, chapter]
            counters[speaker, chapter] += 1
            prosody = Prosody(
                rate=round(rng.uniform(*config.rate), 3),
                pitch=round(rng.uniform(*config.pitch), 2),
                volume=round(math.exp(rng.uniform(*map(math.log, config.volume))), 3),
            )
            utterances.append(
                Utterance(
                    f"{speaker}-{chapter}-{number:04d}",
                    split,
                    voice.id,
                    voice.sex,
                    text,
                    prosody,
                    _draw_effects(rng, config, babble),
                )
            )
    for index in range(quiet):
        rng = random.Random(f"{seed}/quiet/{index}")
        sound = {"quiet": _quiet(rng)}
        channel = {k: v for k, v in _draw_effects(rng, config, babble).items() if k not in ("speed", "noise")}
        utterance_id = f"{QUIET_SPEAKER}-{SPLIT_CHAPTERS['train']}-{index:04d}"
        utterances.append(Utterance(utterance_id, "train", QUIET_VOICE, "none", "", NEUTRAL, sound | channel))
    return utterances


def _clean_path(root: Path, voice: str, text: str, prosody: Prosody) -> Path:
    key = hashlib.sha1(json.dumps([voice, text, asdict(prosody)]).encode()).hexdigest()
    return root / "clean" / key[:2] / f"{key}.flac"


def _write_flac(path: Path, audio: torch.Tensor) -> None:
    """16-bit FLAC at the model's rate, whole or not at all: an interrupted build leaves no half file."""
    with replaced(path, suffix=".tmp.flac") as temporary:
        soundfile.write(temporary, audio.numpy(), FeatureConfig().sample_rate, subtype="PCM_16")


def speak(root: Path, voice: Voice, text: str, prosody: Prosody = NEUTRAL) -> torch.Tensor:
    """16 kHz mono synthesis, kept under ``root/clean`` so that a rebuild with other effects costs no synthesis.

    Always the stored 16-bit file's samples, so that a resumed build renders exactly what a fresh one does."""
    path = _clean_path(root, voice.id, text, prosody)
    if not path.exists():
        _write_flac(path, prepare_waveform(*synthesise(voice, text, prosody)).clamp(-1, 1))
    return decode(path)[0][0]


def _noise_audio(root: Path, audio: torch.Tensor, params: dict, voices: dict[str, Voice]) -> torch.Tensor:
    if params["kind"] == "gaussian":
        return augment.add_noise(audio, params["snr_db"], params["seed"], params["colour"])
    if params["kind"] == "recording":
        recording = recorded_sound(params["file"])
        start = int(params["start"] * max(0, recording.numel() - audio.numel()))
        return augment.mix(audio, recording[start : start + audio.numel()], params["snr_db"])
    talk = [speak(root, voices[voice], text) for voice, text in params["talkers"]]
    babble = torch.zeros(max(t.numel() for t in talk))
    for t in talk:
        babble[: t.numel()] += t / t.square().mean().clamp(min=1e-10).sqrt()
    return augment.mix(audio, babble, params["snr_db"])


def _quiet_audio(params: dict) -> torch.Tensor:
    samples = round(params["seconds"] * FeatureConfig().sample_rate)
    if params["kind"] == "silence":
        return torch.zeros(samples)
    if params["kind"] == "gaussian":
        sound = augment.gaussian_noise(samples, params["seed"], params["colour"])
    elif params["kind"] == "hum":
        sound = augment.hum(samples, params["hz"], params["harmonics"])
    else:
        recording = recorded_sound(params["file"])
        start = int(params["start"] * max(0, recording.numel() - samples))
        sound = augment.looped(recording[start : start + samples], samples)
    return augment.at_level(sound, params["dbfs"])


@functools.cache
def recorded_sound(name: str) -> torch.Tensor:
    path = RECORDED_NOISE / f"{name}.ogg"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (Debian: apt-get install frozen-bubble-data)")
    return prepare_waveform(*decode(path))


def render(utterance: Utterance, voices: dict[str, Voice], root: Path) -> torch.Tensor:
    """The utterance's 16 kHz mono audio: synthesis (or, for a clip without speech, its sound), then its effects."""
    quiet = utterance.voice == QUIET_VOICE
    audio = torch.zeros(0) if quiet else speak(root, voices[utterance.voice], utterance.text, utterance.prosody)
    for name, params in utterance.effects.items():
        if name == "quiet":
            audio = _quiet_audio(params)
        elif name == "speed":
            audio = augment.change_speed(audio, params["factor"])
        elif name == "room":
            response = augment.room_response(params["size"], params["rt60"], params["source"], params["microphone"])
            audio = augment.reverberate(audio, response)
        elif name == "colour":
            audio = augment.colour(audio, params["bands"], params["low_cut"])
        elif name == "noise":
            audio = _noise_audio(root, audio, params, voices)
        elif name == "telephone":
            audio = augment.band_limit(audio, codec=params["codec"])
        elif name == "codec":
            audio = augment.encode_decode(audio, params["name"], bitrate=params["bitrate"])
        elif name == "clip":
            audio = augment.clip(audio, params["level"])
        elif name == "dc":
            audio = audio + params["offset"] * audio.abs().max()
    peak = audio.abs().max()
    return audio * (0.99 / peak) if peak > 0.99 else audio


def _write(job: tuple[Utterance, Path]) -> tuple[str, float]:
    utterance, root = job
    path = utterance.path(root)
    if not path.exists():
        engine, name = utterance.voice.split(":", 1)
        voices = {voice.id: voice for voice in catalogue()} | {utterance.voice: Voice(engine, name, utterance.sex)}
        _write_flac(path, render(utterance, voices, root))
    return utterance.id, soundfile.info(path).duration


@contextlib.contextmanager
def _mapping(jobs: int) -> Iterator[Callable]:
    """``map`` for one job (a worker would spend seconds importing torch afresh), else a pool's unordered map."""
    if jobs == 1:
        yield map
        return
    # Spawned, not forked, workers: a fork taken after torch has started its thread pool
    # (as in any process that already ran a model) deadlocks inside the first torch call.
    with multiprocessing.get_context("spawn").Pool(jobs, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        yield functools.partial(pool.imap_unordered, chunksize=8)


def build(
    root: Path,
    n_train: int,
    n_dev: int,
    n_test: int,
    seed: int = 0,
    jobs: int = 2,
    text_source: str = "fortunes",
    held_out: tuple[str, ...] = DEFAULT_HELD_OUT,
    engines: tuple[str, ...] | None = None,
    config: AugmentConfig = AugmentConfig(),
    exclude: frozenset[str] = frozenset(),
    blends: int = 0,
    accents: int = 0,
    quiet: int = 0,
) -> Path:
    """Write the corpus under ``root`` and return its manifest's path."""
    utterances = plan(
        n_train, n_dev, n_test, seed, text_source, held_out, config, engines, exclude, blends, accents, quiet
    )
    return write(root, utterances, jobs)


def replayed(manifest: Path) -> list[Utterance]:
    """The utterances a corpus manifest lists, to synthesise them again exactly: how an evaluation set stays the
    same set while the builder's sentence pools and voice draws change."""
    utterances = []
    for line in manifest.read_text().splitlines():
        entry = json.loads(line)
        entry.pop("duration", None)
        utterances.append(Utterance(**entry | {"prosody": Prosody(**entry["prosody"])}))
    return utterances


def write(root: Path, utterances: list[Utterance], jobs: int = 2) -> Path:
    """Synthesise ``utterances`` under ``root`` (those already there are kept) and write the manifest."""
    with _mapping(jobs) as mapped:
        written = mapped(_write, [(u, root) for u in utterances])
        durations = dict(tqdm(written, total=len(utterances), desc="synthesising", unit="utt"))
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

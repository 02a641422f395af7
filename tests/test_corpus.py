import collections
import json
import math

import pytest
import torch

from asr.features import FeatureConfig
from training import augment, corpus
from training.data import FeatureDataset, load, read_transcripts
from training.texts import fortune_sentences, sentences_from
from training.voices import catalogue


def test_layout_is_librispeech_splits_are_disjoint_and_test_voices_unseen(tmp_path):
    manifest = corpus.build(tmp_path, n_train=12, n_dev=3, n_test=4, seed=7, jobs=2)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert collections.Counter(r["split"] for r in rows) == {"train": 12, "dev": 3, "test": 4}
    texts = {split: {r["text"] for r in rows if r["split"] == split} for split in ("train", "dev", "test")}
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"] and not texts["dev"] & texts["test"]
    assert {r["voice"] for r in rows if r["split"] == "test"} <= set(corpus.DEFAULT_HELD_OUT)
    assert not {r["voice"] for r in rows if r["split"] != "test"} & set(corpus.DEFAULT_HELD_OUT)
    assert all({"sex", "prosody", "effects", "duration"} <= r.keys() and r["duration"] > 0.3 for r in rows)
    items = read_transcripts(tmp_path / "train")
    assert len(items) == 12
    for utterance_id, path, text in items:
        speaker, chapter, _ = utterance_id.split("-")
        assert path == tmp_path / "train" / speaker / chapter / f"{utterance_id}.flac"
        assert text == next(r["text"] for r in rows if r["id"] == utterance_id)
    examples = FeatureDataset(load([tmp_path / "test"], FeatureConfig()), FeatureConfig())
    assert len(examples) == 4 and all(examples[i][0].shape[0] == 128 for i in range(4))


def test_build_is_deterministic_and_resumes(tmp_path):
    first = corpus.build(tmp_path / "a", 6, 1, 1, seed=3, jobs=2).read_text()
    path = corpus.plan(6, 1, 1, seed=3)[0].path(tmp_path / "a")
    audio = path.read_bytes()
    path.unlink()  # an interrupted build: one file missing
    assert corpus.build(tmp_path / "a", 6, 1, 1, seed=3, jobs=2).read_text() == first
    assert path.read_bytes() == audio
    assert corpus.build(tmp_path / "b", 6, 1, 1, seed=3, jobs=1).read_text() == first
    assert corpus.build(tmp_path / "c", 6, 1, 1, seed=4, jobs=1).read_text() != first


def test_plan_balances_engines_sexes_and_effects():
    utterances = corpus.plan(3000, 100, 100, seed=0)
    train = [u for u in utterances if u.split == "train"]
    assert sum(u.sex == "female" for u in train) / len(train) == pytest.approx(0.5, abs=0.03)
    male = collections.Counter(u.voice.split(":")[0] for u in train if u.sex == "male")
    for engine, weight in corpus.ENGINE_WEIGHTS.items():  # every engine has male voices in train
        assert male[engine] / sum(male.values()) == pytest.approx(weight, abs=0.04)
    assert len({u.voice for u in train}) > 100
    test_sexes = {u.sex for u in utterances if u.split == "test"}
    assert test_sexes == {"female", "male"}
    config = corpus.AugmentConfig()
    for effect, share in (
        ("noise", config.noise),
        ("speed", config.speed),
        ("reverb", config.reverb),
        ("telephone", config.telephone),
    ):
        assert sum(effect in u.effects for u in train) / len(train) == pytest.approx(share, abs=0.04)
    assert all(config.rate[0] <= u.prosody.rate <= config.rate[1] for u in train)


def test_text_sources_and_bad_arguments():
    assert len(fortune_sentences()) > 10_000
    commands = corpus.split_texts("commands", 20, 5, 5, seed=1)
    assert len(set(commands["train"] + commands["dev"] + commands["test"])) == 30
    with pytest.raises(ValueError, match="unknown text source 'poems'"):
        corpus.split_texts("poems", 1, 1, 1, seed=0)
    with pytest.raises(ValueError, match="held-out voices not installed here: flite:nobody"):
        corpus.plan(1, 1, 1, held_out=("flite:nobody",))


def test_sentences_from_fortune_entries():
    entries = [
        "It is a truth universally acknowledged. Dr. Who has 2 hearts!\n\t\t-- Anonymous",
        "  /\\_/\\  ( o.o )  > ^ <   cat picture here",
        "It is a truth universally acknowledged.",
        "Too short. Q: What? A: Four words are fine here.",
    ]
    assert sentences_from(entries) == [
        "it is a truth universally acknowledged",
        "doctor who has two hearts",
        "a four words are fine here",
    ]


def _tone_and_voice():
    t = torch.arange(16000) / 16000
    return 0.3 * torch.sin(2 * math.pi * 440 * t) * (1 + torch.sin(2 * math.pi * 3 * t))


def test_noise_is_added_at_the_asked_snr():
    clean = _tone_and_voice()
    for colour in (0.0, 0.9):
        noisy = augment.add_noise(clean, 12.0, seed=5, colour=colour)
        snr = 10 * torch.log10(clean.square().mean() / (noisy - clean).square().mean())
        assert snr.item() == pytest.approx(12.0, abs=0.01)
    assert torch.equal(augment.add_noise(clean, 12.0, seed=5), augment.add_noise(clean, 12.0, seed=5))


def test_speed_reverb_and_telephone():
    clean = _tone_and_voice()
    assert augment.change_speed(clean, 1.25).numel() == pytest.approx(16000 / 1.25, abs=2)
    wet = augment.reverberate(clean, 0.5, seed=1)
    assert wet.shape == clean.shape and wet.abs().max() == pytest.approx(clean.abs().max().item())
    assert not torch.allclose(wet, clean, atol=1e-3)
    white = torch.randn(16000, generator=torch.Generator().manual_seed(0))
    spectrum = torch.fft.rfft(augment.band_limit(white)).abs().square()
    hz = torch.linspace(0, 8000, spectrum.numel())
    assert spectrum[hz > 3800].sum() / spectrum.sum() < 0.01 and spectrum[hz < 150].sum() / spectrum.sum() < 0.01


def test_every_held_out_default_voice_exists():
    ids = {voice.id for voice in catalogue()}
    assert set(corpus.DEFAULT_HELD_OUT) <= ids

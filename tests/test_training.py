import dataclasses
import functools
import json
import subprocess
import sys

import pytest
import torch

from asr import checkpoint
from asr.audio import decode
from asr.features import FeatureConfig, features
from asr.text import encode
from asr.transcriber import Transcriber
from tests.conftest import speak
from training import corpus
from training.data import Example, load_examples, read_transcripts
from training.metrics import cer, edit_distance, wer
from training.train import PRESETS, TrainConfig, train

OVERFIT_TEXTS = ["open the garage door", "call alice on monday", "play music in the kitchen", "turn off the red lamp"]


def test_edit_distance_and_rates():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a"]) == 1
    assert cer(["abcd", "ef"], ["abxd", "ef"]) == pytest.approx(1 / 6)
    assert wer(["the cat sat"], ["the cat sat down"]) == pytest.approx(1 / 3)


def test_overfit_a_handful_of_utterances_to_zero_cer(tmp_path):
    """Loss, features, alphabet, model and decoder are wired together: a small model memorises four clips."""
    config = FeatureConfig()
    examples = []
    for i, text in enumerate(OVERFIT_TEXTS):
        waveform, rate = decode(speak(text, voice=["en-us", "en-gb"][i % 2]))
        examples.append(Example(str(i), features(waveform, rate, config), text, torch.tensor(encode(text))))
    train_config = TrainConfig(
        model=dataclasses.replace(PRESETS["tiny"], dropout=0.0),
        epochs=500,
        lr=5e-3,
        max_frames=100_000,
        spec_augment=False,
        device="cpu",
    )
    out = tmp_path / "overfit.safetensors"
    model, result = train(train_config, examples, examples, out=out)
    assert result.history[-1]["dev_cer"] == 0.0, result.history[-1]
    # The written checkpoint transcribes the raw audio the same way, through the serving path.
    transcriber = Transcriber.from_checkpoint(out, "cpu")
    audio = [decode(speak(text, voice=["en-us", "en-gb"][i % 2])) for i, text in enumerate(OVERFIT_TEXTS)]
    assert [t.text for t in transcriber.transcribe(audio)] == OVERFIT_TEXTS
    assert checkpoint.read_info(out).provenance["steps"] == result.steps == 500


def test_corpus_layout_is_librispeech_and_test_voices_are_unseen(tmp_path):
    manifest = corpus.build(tmp_path, n_train=12, n_dev=3, n_test=3, seed=7, jobs=2)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["split"] for r in rows].count("train") == 12
    texts = {split: {r["text"] for r in rows if r["split"] == split} for split in ("train", "dev", "test")}
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"]
    train_voices = {r["voice"] for r in rows if r["split"] == "train"}
    assert all(
        r["voice"].startswith(corpus.HELD_OUT_ACCENT) and r["voice"] not in train_voices
        for r in rows
        if r["split"] == "test"
    )
    items = read_transcripts(tmp_path / "train")
    assert len(items) == 12
    for utterance_id, path, text in items:
        speaker, chapter, _ = utterance_id.split("-")
        assert path == tmp_path / "train" / speaker / chapter / f"{utterance_id}.flac"
        assert (path.parent / f"{speaker}-{chapter}.trans.txt").exists()
        assert text == next(r["text"] for r in rows if r["id"] == utterance_id)
    examples = load_examples(tmp_path / "dev", FeatureConfig())
    assert len(examples) == 3 and all(e.features.shape[0] == 128 for e in examples)


def test_corpus_is_deterministic_and_resumes(tmp_path):
    first = corpus.build(tmp_path / "a", 6, 1, 1, seed=3, jobs=2).read_text()
    path = corpus.plan(6, 1, 1, seed=3)[0].path(tmp_path / "a")
    audio = path.read_bytes()
    path.unlink()  # an interrupted build: one file missing
    assert corpus.build(tmp_path / "a", 6, 1, 1, seed=3, jobs=2).read_text() == first
    assert path.read_bytes() == audio
    assert corpus.build(tmp_path / "b", 6, 1, 1, seed=3, jobs=1).read_text() == first
    assert corpus.build(tmp_path / "c", 6, 1, 1, seed=4, jobs=1).read_text() != first


def test_command_line_builds_trains_and_evaluates(tmp_path):
    """``python -m training corpus``, ``train`` and ``evaluate`` chained as the README shows them."""
    data, out = tmp_path / "corpus", tmp_path / "run" / "model.safetensors"
    run = functools.partial(subprocess.run, check=True, capture_output=True, text=True)
    run([sys.executable, "-m", "training", "corpus", "--out", data, "--train", "6", "--dev", "2", "--test", "2"])
    run(
        [
            sys.executable,
            "-m",
            "training",
            "train",
            "--data",
            data,
            "--out",
            out,
            "--preset",
            "tiny",
            "--set",
            "rnn_hidden=64",
            "--epochs",
            "2",
            "--device",
            "cpu",
        ]
    )
    info = checkpoint.read_info(out)
    assert info.model_config.rnn_hidden == 64 and info.model_config.cnn_channels == PRESETS["tiny"].cnn_channels
    assert info.provenance["train_utterances"] == 6 and info.provenance["epoch"] in (1, 2)
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    report = json.loads(run([sys.executable, "-m", "training", "evaluate", "--checkpoint", out, "--data", data]).stdout)
    assert report["dev"]["utterances"] == 2 and report["test"]["utterances"] == 2
    assert 0 <= report["test"]["cer"] <= 1.5


def test_bad_override_is_refused_by_name(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training", "train", "--data", tmp_path, "--out", tmp_path / "m", "--set", "depth=3"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "FIELD one of n_mels" in result.stderr

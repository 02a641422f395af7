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
from training.data import Example
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

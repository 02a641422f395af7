import dataclasses
import functools
import json
import math
import subprocess
import sys
import warnings

import pytest
import torch

from asr import checkpoint
from asr.audio import decode
from asr.features import FeatureConfig
from asr.model import AcousticModel, ModelConfig
from asr.transcriber import Transcriber
from tests.support.speech import speak, write_chapter
from training import corpus, evaluation
from training import train as train_module
from training.__main__ import build_parser
from training.data import FeatureDataset, load
from training.metrics import cer, edit_distance, wer
from training.train import PRESETS, Optimisation, TrainConfig, train

OVERFIT_TEXTS = ["open the garage door", "call alice on monday", "play music in the kitchen", "turn off the red lamp"]


def test_edit_distance_and_rates():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a"]) == 1
    assert cer(["abcd", "ef"], ["abxd", "ef"]) == pytest.approx(1 / 6)
    assert wer(["the cat sat"], ["the cat sat down"]) == pytest.approx(1 / 3)


def test_bf16_on_a_cpu_that_only_emulates_it_warns_that_fp32_is_faster(monkeypatch):
    model, cpu = AcousticModel(ModelConfig(n_rnn_layers=1)), torch.device("cpu")
    monkeypatch.setattr(train_module, "native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="use --precision fp32"):
        Optimisation(model, TrainConfig(precision="bf16"), total_steps=10, device=cpu)
    monkeypatch.setattr(train_module, "native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Optimisation(model, TrainConfig(precision="bf16"), total_steps=10, device=cpu)
        Optimisation(model, TrainConfig(precision="fp32"), total_steps=10, device=cpu)


def test_an_update_with_a_non_finite_gradient_is_skipped_and_a_run_of_them_stops_training():
    torch.manual_seed(0)
    model = AcousticModel(
        ModelConfig(cnn_channels=4, n_res_blocks=1, rnn_dim=32, rnn_hidden=32, n_rnn_layers=1, classifier_dim=32)
    )
    optimisation = Optimisation(model, TrainConfig(lr=1e-2), total_steps=100, device=torch.device("cpu"))
    feats, lengths = torch.randn(2, 128, 50), torch.tensor([50, 40])
    targets, target_lengths = torch.tensor([3, 4, 5, 6, 7]), torch.tensor([3, 2])
    initial = [p.detach().clone() for p in model.parameters()]
    assert optimisation.step(feats, lengths, targets, target_lengths) > 0
    trained = [p.detach().clone() for p in model.parameters()]
    assert not all(torch.equal(a, b) for a, b in zip(initial, trained, strict=True))
    poisoned = feats.clone()
    poisoned[0, :, 10] = float("nan")
    assert math.isnan(optimisation.step(poisoned, lengths, targets, target_lengths))
    assert all(torch.equal(a, b) for a, b in zip(trained, model.parameters(), strict=True))
    assert optimisation.scheduler.last_epoch == 2  # the schedule keeps time with the steps
    for _ in range(train_module.MAX_SKIPPED_IN_A_ROW - 2):
        optimisation.step(poisoned, lengths, targets, target_lengths)
    with pytest.raises(FloatingPointError, match="updates in a row had non-finite gradients"):
        optimisation.step(poisoned, lengths, targets, target_lengths)


class ComputedOnce(FeatureDataset):
    """Each clip's features computed on first use only: 300 epochs would decode four clips 2,400 times."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._items: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index not in self._items:
            self._items[index] = super().__getitem__(index)
        return self._items[index]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_overfit_a_handful_of_utterances_to_zero_cer(tmp_path, precision):
    """Loss, features, alphabet, model and decoder are wired together: a small model memorises four clips."""
    config = FeatureConfig()
    clips = [(text, speak(text, voice=["en-us", "en-gb"][i % 2])) for i, text in enumerate(OVERFIT_TEXTS)]
    examples = ComputedOnce(load([write_chapter(tmp_path / "clips", 1, 1, clips)], config), config)
    train_config = TrainConfig(
        model=dataclasses.replace(PRESETS["tiny"], dropout=0.0),
        epochs=300,
        lr=1e-2,
        max_frames=100_000,
        spec_augment=None,
        device="cpu",
        precision=precision,
        eval_every=50,
    )
    out = tmp_path / "overfit.safetensors"
    model, result = train(train_config, examples, examples, out=out, workers=0)
    assert result.history[-1]["dev_cer"] == 0.0, result.history[-1]
    # The written checkpoint transcribes the raw audio the same way, through the serving path.
    transcriber = Transcriber.from_checkpoint(out, "cpu")
    audio = [decode(wav) for _, wav in clips]
    assert [t.text for t in transcriber.transcribe(audio)] == OVERFIT_TEXTS
    assert checkpoint.read_info(out).provenance["steps"] == result.steps == 300


def test_command_line_builds_trains_and_evaluates(tmp_path):
    """``python -m training corpus``, ``train`` and ``evaluate`` chained as the README shows them."""
    data, out = tmp_path / "corpus", tmp_path / "run" / "model.safetensors"
    run = functools.partial(subprocess.run, check=True, capture_output=True, text=True)
    corpus_command = [
        "corpus",
        "--out",
        data,
        "--train",
        "6",
        "--dev",
        "2",
        "--test",
        "2",
        "--engines",
        "espeak-ng",
        "flite",
        "--jobs",
        "1",
    ]
    run([sys.executable, "-m", "training", *corpus_command])
    train_command = "train --data {} --out {} --preset tiny --set rnn_hidden=64 --epochs 2 --device cpu"
    trained = run([sys.executable, "-m", "training", *train_command.format(data, out).split()])
    assert "model: 162,173 parameters (tiny preset)" in trained.stdout
    info = checkpoint.read_info(out)
    assert info.model_config.rnn_hidden == 64 and info.model_config.cnn_channels == PRESETS["tiny"].cnn_channels
    assert info.provenance["train_utterances"] == 6 and info.provenance["epoch"] in (1, 2)
    assert info.provenance["command"] == "python -m training " + train_command.format(data, out)
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    assert len(out.with_suffix(".csv").read_text().splitlines()) == 3  # header and two epochs
    report = json.loads(
        run(
            [sys.executable, "-m", "training", "evaluate", out, data, "--report", tmp_path / "r.json"]
            + ["--device", "cpu", "--precision", "auto"]
        ).stdout
    )
    assert report["dev"]["utterances"] == 2 and report["test"]["utterances"] == 2
    assert set(report["test"]["by_voice"]) <= set(corpus.DEFAULT_HELD_OUT)
    assert sum(v["utterances"] for v in report["test"]["by_voice"].values()) == 2
    assert set(report["test"]["by_engine"]) == {v.split(":")[0] for v in report["test"]["by_voice"]}
    written = json.loads((tmp_path / "r.json").read_text())
    assert written["precision"] == "int8"  # what the service runs on a CPU
    rows = written["utterances"]
    assert [r["split"] for r in rows] == ["dev", "dev", "test", "test"] and all(r["voice"] for r in rows)


def test_bad_override_is_refused_by_name(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "training", "train", "--data", tmp_path, "--out", tmp_path / "m", "--set", "depth=3"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "FIELD one of n_mels" in result.stderr


def test_resume_continues_exactly_where_an_interrupted_run_stopped(tmp_path):
    """Stopping after 5 steps and resuming ends with the very parameters of an uninterrupted run.

    Dropout and SpecAugment are on, so their random states must resume too. The resumed half
    prepares its batches in worker processes, the rest in-process: same result.
    """
    clips = [(text, speak(text, rate=140 + 10 * i)) for i, text in enumerate(OVERFIT_TEXTS * 2)]
    folder = write_chapter(tmp_path / "clips", 1, 1, clips)
    examples = FeatureDataset(load([folder], FeatureConfig()), FeatureConfig())
    dev = FeatureDataset(examples.recordings[:2], FeatureConfig())
    config = TrainConfig(
        model=dataclasses.replace(PRESETS["tiny"], dropout=0.2),
        epochs=3,
        max_frames=700,
        device="cpu",
        checkpoint_every=2,
    )
    whole, whole_result = train(config, examples, dev, out=tmp_path / "whole" / "m.safetensors", workers=0)
    out = tmp_path / "split" / "m.safetensors"
    _, first = train(config, examples, dev, out=out, stop_after_steps=5, workers=0)
    assert not first.finished and first.steps == 5
    resumed, second = train(config, examples, dev, out=out, resume=True, workers=2)
    assert second.finished and second.steps == whole_result.steps > 5
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    strip = [{k: v for k, v in e.items() if k != "audio_seconds_per_second"} for e in second.history]
    assert strip == [{k: v for k, v in e.items() if k != "audio_seconds_per_second"} for e in whole_result.history]
    assert out.with_suffix(".csv").read_text().splitlines()[0].startswith("epoch,steps,loss")
    assert any(out.with_name("m.tensorboard").iterdir())
    with pytest.raises(ValueError, match=r"other settings \(lr\)"):
        train(dataclasses.replace(config, lr=1e-4), examples, dev, out=out, resume=True, workers=0)


def test_report_rates_match_hand_counts():
    def row(split, voice, reference, hypothesis):
        return {"split": split, "voice": voice, "sex": None, **evaluation.error_counts(reference, hypothesis)}

    rows = [
        row("test", "a", "the cat sat", "the bat sat"),  # 1 char of 11, 1 word of 3
        row("test", "b", "on the mat", "on the mat today"),  # 6 chars of 10, 1 word of 3
        row("dev", "a", "hello", ""),
    ]  # 5 chars of 5, 1 word of 1
    result = evaluation.report(rows)
    assert result["test"] == {
        "utterances": 2,
        "cer": round(7 / 21, 4),
        "wer": round(2 / 6, 4),
        "by_voice": {
            "a": {"utterances": 1, "cer": round(1 / 11, 4), "wer": round(1 / 3, 4)},
            "b": {"utterances": 1, "cer": 0.6, "wer": round(1 / 3, 4)},
        },
    }
    assert result["dev"]["cer"] == 1.0 and result["dev"]["wer"] == 1.0 and "by_sex" not in result["dev"]


def test_a_manifest_of_recordings_is_scored_per_source(tmp_path):
    """The real dev set's shape: ``manifest.tsv`` of absolute WAV paths and references, one folder per source."""
    lines = []
    for source, text in (("alpha", "open the garage door"), ("alpha", "call alice"), ("beta", "Play MUSIC, now!")):
        wav = tmp_path / "wav" / source / f"{len(lines)}.wav"
        wav.parent.mkdir(parents=True, exist_ok=True)
        wav.write_bytes(speak(text.lower().strip("!")))
        lines.append(f"{wav}\t{text}\n")
    (tmp_path / "manifest.tsv").write_text("".join(lines))
    folders, known = evaluation.splits_of(tmp_path, ["dev", "test"])
    assert folders == {tmp_path.name: tmp_path} and known["beta/2"] == {"source": "beta"}
    model, info = checkpoint.load(checkpoint.DEFAULT_CHECKPOINT, "cpu")
    rows = evaluation.score(model, info.feature_config, folders, known, workers=0)
    assert [(r["id"], r["source"], r["reference"]) for r in rows] == [
        ("alpha/0", "alpha", "open the garage door"),
        ("alpha/1", "alpha", "call alice"),
        ("beta/2", "beta", "play music now"),
    ]
    summary = evaluation.report(rows)[tmp_path.name]
    assert summary["by_source"]["alpha"]["utterances"] == 2 and summary["cer"] < 0.2  # espeak-ng: well heard
    (tmp_path / "manifest.tsv").write_text(f"{tmp_path / 'gone.wav'}\tnothing\n")
    with pytest.raises(FileNotFoundError, match="gone.wav does not exist"):
        load([tmp_path], FeatureConfig())


def test_effects_are_reported_one_group_each_and_clean_apart():
    def row(effects, reference, hypothesis):
        return {"split": "dev", "effects": effects, **evaluation.error_counts(reference, hypothesis)}

    rows = [row([], "a b", "a b"), row(["noise", "room"], "a b", "a c"), row(["noise"], "a b", "c c")]
    groups = evaluation.report(rows)["dev"]["by_effect"]
    assert {name: group["wer"] for name, group in groups.items()} == {"clean": 0.0, "noise": 0.75, "room": 0.5}


def test_the_command_line_refuses_a_new_shape_for_an_init_checkpoint(tmp_path):
    def run(*flags):
        args = build_parser().parse_args(["train", "--init", "asr/models/default.safetensors", "--out", "x", *flags])
        args.run(args)

    for flags in (["--set", "rnn_hidden=64"], ["--preset", "tiny"]):
        with pytest.raises(SystemExit, match="takes the model's shape from its checkpoint"):
            run(*flags)
    # What holds no weights, and wider GRUs (training.grow), pass the check; then the run wants its data.
    for flags in (["--set", "running_mean_frames=200", "--set", "dropout=0.2"], ["--set", "rnn_hidden=384"]):
        with pytest.raises(SystemExit, match="give --data"):
            run(*flags)


def test_init_starts_from_a_checkpoint_and_refuses_another_shape(tmp_path):
    clips = [(text, speak(text)) for text in OVERFIT_TEXTS]
    examples = FeatureDataset(load([write_chapter(tmp_path / "clips", 1, 1, clips)], FeatureConfig()), FeatureConfig())
    config = TrainConfig(model=PRESETS["tiny"], epochs=1, max_frames=700, device="cpu")
    first = tmp_path / "first.safetensors"
    trained, _ = train(config, examples, out=first, workers=0)
    # With a learning rate of zero, a run started from the checkpoint still holds its exact weights.
    again, _ = train(dataclasses.replace(config, lr=0.0, seed=1), examples, init=first, workers=0)
    for (name, a), b in zip(trained.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    other = dataclasses.replace(config, model=dataclasses.replace(PRESETS["tiny"], rnn_hidden=64))
    with pytest.raises(ValueError, match="another model or feature configuration"):
        train(other, examples, init=first, workers=0)
    # The input centring is not part of the shape: a checkpoint can be fine-tuned with a running mean.
    running = dataclasses.replace(config, model=dataclasses.replace(PRESETS["tiny"], running_mean_frames=200), lr=0.0)
    centred, _ = train(running, examples, init=first, workers=0)
    assert centred.config.running_mean_frames == 200 and torch.equal(centred.conv.weight, trained.conv.weight)


def test_dev_is_evaluated_every_n_steps_or_at_each_epoch_end_and_always_after_the_last_step():
    schedule = [(1, []), (1, []), (1, []), (2, []), (2, [])]
    assert [s for s in range(5) if train_module._evaluates_after(s, schedule, None)] == [2, 4]
    assert [s for s in range(5) if train_module._evaluates_after(s, schedule, 2)] == [1, 3, 4]

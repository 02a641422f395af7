import random
import re
import subprocess
import sys

import pytest
import torch

from asr import checkpoint
from asr.audio import AudioDecodeError
from asr.features import FeatureConfig
from asr.text import decode, encode
from tests.support.speech import speak, write_chapter
from training.__main__ import main
from training.data import FeatureDataset, Recording, batches, collate, length_buckets, load

TEXTS = ["Turn on the lights.", "It's 7 o'clock", "play some jazz"]


@pytest.fixture(scope="module")
def librispeech(tmp_path_factory):
    """A LibriSpeech root holding a two-chapter ``dev-clean`` made of real espeak-ng speech."""
    root = tmp_path_factory.mktemp("ls")
    subset = root / "LibriSpeech" / "dev-clean"
    write_chapter(subset, 84, 121123, [(t, speak(t)) for t in TEXTS[:2]])
    write_chapter(subset, 174, 50561, [(TEXTS[2], speak(TEXTS[2], voice="en-gb"))])
    return root


def test_librispeech_subsets_load_through_torchaudio_like_any_folder(librispeech):
    config = FeatureConfig()
    subset = load(["dev-clean"], config, librispeech_root=librispeech)
    assert [r.id for r in subset] == ["174-50561-0000", "84-121123-0000", "84-121123-0001"]
    assert [r.text for r in subset] == ["play some jazz", "turn on the lights", "it's seven o'clock"]
    assert load([librispeech / "LibriSpeech" / "dev-clean"], config) == subset
    dataset = FeatureDataset(subset, config)
    for i, recording in enumerate(subset):
        feats, targets = dataset[i]
        assert feats.shape == (128, recording.frames)  # the header-derived length is the real one
        assert decode(targets.tolist()) == recording.text


def test_missing_sources_are_named(librispeech):
    with pytest.raises(FileNotFoundError, match="dev-other does not exist: download dev-other"):
        load(["dev-other"], FeatureConfig(), librispeech_root=librispeech)
    with pytest.raises(ValueError, match="test-clean is a LibriSpeech subset"):
        load(["test-clean"], FeatureConfig())
    with pytest.raises(FileNotFoundError, match="neither a folder nor a LibriSpeech subset"):
        load([librispeech / "nowhere"], FeatureConfig())


def test_length_buckets_cover_every_recording_once_within_the_frame_budget():
    frames = [random.Random(i).randrange(50, 900) for i in range(500)]
    plan = length_buckets(frames, 3000, random.Random(1))
    assert sorted(i for batch in plan for i in batch) == list(range(500))
    assert all(len(b) * max(frames[i] for i in b) <= 3000 or len(b) == 1 for b in plan)
    padding = sum(len(b) * max(frames[i] for i in b) for b in plan) / sum(frames)
    assert padding < 1.1, "sorted buckets should pad little"
    assert plan == length_buckets(frames, 3000, random.Random(1)) != length_buckets(frames, 3000, random.Random(2))


def test_a_recording_that_cannot_be_decoded_is_named(tmp_path):
    broken = tmp_path / "1-2-0003.flac"
    broken.write_bytes(b"fLaC" + bytes(100))
    dataset = FeatureDataset([Recording("1-2-0003", broken, "hello", 100)], FeatureConfig())
    with pytest.raises(AudioDecodeError, match=f"^{re.escape(str(broken))}: not a supported audio file"):
        dataset[0]


def test_worker_processes_yield_the_batches_made_in_process(librispeech):
    dataset = FeatureDataset(load(["dev-clean"], FeatureConfig(), librispeech_root=librispeech), FeatureConfig())
    plan = [[2, 0], [1]]
    expected = [collate([dataset[i] for i in batch]) for batch in plan]
    for got, want in zip(batches(dataset, plan, workers=2), expected, strict=True):
        for a, b in zip(got, want, strict=True):
            assert torch.equal(a, b)
    feats, lengths, targets, target_lengths = expected[0]
    assert feats.shape == (2, 128, int(lengths.max())) and lengths.tolist() == [
        dataset.recordings[i].frames for i in (2, 0)
    ]
    assert targets.tolist() == encode("it's seven o'clock") + encode("play some jazz")
    assert target_lengths.tolist() == [18, 14]


def test_command_line_trains_on_librispeech_subsets(librispeech, tmp_path):
    out = tmp_path / "m.safetensors"
    command = (
        f"train --librispeech {librispeech} --train dev-clean --dev dev-clean --out {out} --preset tiny --epochs 1"
    )
    subprocess.run([sys.executable, "-m", "training", *command.split(), "--device", "cpu"], check=True)
    info = checkpoint.read_info(out)
    assert info.provenance["data"] == ["dev-clean"] and info.provenance["train_utterances"] == 3
    assert 0 <= info.provenance["metrics"]["dev_cer"] <= 1
    with pytest.raises(SystemExit, match="give --data CORPUS or --train SOURCE"):
        main(["train", "--out", str(out)])

"""DDP with two gloo processes on this CPU: the single-process gradient on the same global batch, exact resume."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import safetensors.torch
import torch
import torch.multiprocessing as mp

from asr import checkpoint
from asr.model import AcousticModel
from asr.text import NUM_CLASSES
from tests.support.speech import speak, write_chapter
from training import distributed
from training.train import PRESETS, Optimisation, TrainConfig, state_path

CONFIG = TrainConfig(model=PRESETS["tiny"], grad_clip=1e9, device="cpu")


def _batches() -> list[tuple[torch.Tensor, ...]]:
    """Two batches of different sizes and lengths, so an unweighted average of means would be wrong."""
    generator = torch.Generator().manual_seed(1)
    batches = []
    for sizes in ([120, 90, 60], [150, 40]):
        lengths = torch.tensor(sizes)
        feats = torch.randn(len(sizes), 128, max(sizes), generator=generator) * 3 - 7
        target_lengths = lengths // 10
        targets = torch.randint(1, NUM_CLASSES, (int(target_lengths.sum()),), generator=generator)
        batches.append((feats, lengths, targets, target_lengths))
    return batches


def _model() -> AcousticModel:
    torch.manual_seed(0)
    return AcousticModel(CONFIG.model)


def _gradients(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


def _rank(rank: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    world, device = distributed.join("cpu")
    model = _model()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    batch = _batches()[world.rank]
    Optimisation(ddp, CONFIG, 10, device, world.size).step(*batch, global_batch_size=5)
    if world.is_main:
        torch.save(_gradients(model), out)
    distributed.leave()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_match_one_process_on_the_global_batch(tmp_path):
    (f1, l1, t1, tl1), (f2, l2, t2, tl2) = _batches()
    merged = torch.zeros(5, 128, 150)
    merged[:3, :, :120], merged[3:, :, :150] = f1, f2
    single = _model()
    Optimisation(single, CONFIG, 10, torch.device("cpu")).step(
        merged, torch.cat([l1, l2]), torch.cat([t1, t2]), torch.cat([tl1, tl2])
    )
    out = tmp_path / "grads.pt"
    mp.spawn(_rank, args=(_free_port(), str(out)), nprocs=2, join=True)
    for expected, got in zip(_gradients(single), torch.load(out), strict=True):
        assert torch.allclose(expected, got, rtol=1e-4, atol=1e-6)
    assert any(g.abs().sum() > 0 for g in torch.load(out))


def _torchrun(*args: object) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    result = subprocess.run([*command, "-m", "training", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_torchrun_trains_with_two_processes_and_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    """Each process resumes with its own dropout and SpecAugment random state, not the first one's."""
    texts = ["open the garage door", "call alice on monday", "play music", "turn off the red lamp"] * 2
    data = write_chapter(tmp_path / "clips", 1, 1, [(t, speak(t, rate=140 + 10 * i)) for i, t in enumerate(texts)])
    whole, split = tmp_path / "whole" / "m.safetensors", tmp_path / "split" / "m.safetensors"
    run = ["train", "--train", data, "--dev", data, "--preset", "tiny", "--set", "dropout=0.2", "--epochs", "3"]
    run += ["--max-frames", "350"]
    _torchrun(*run, "--out", whole, "--device", "cpu", "--workers", "0")
    _torchrun(*run, "--out", split, "--device", "cpu", "--workers", "0", "--stop-after-steps", "3")
    assert torch.load(state_path(split), weights_only=True)["progress"]["step"] == 3
    assert torch.load(state_path(split, rank=1), weights_only=True)["step"] == 3
    _torchrun(*run, "--out", split, "--device", "cpu", "--workers", "0", "--resume")
    assert checkpoint.read_info(whole).provenance["processes"] == 2
    assert checkpoint.read_info(whole).provenance["steps"] == checkpoint.read_info(split).provenance["steps"] == 6
    expected, got = safetensors.torch.load_file(whole), safetensors.torch.load_file(split)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name

"""Multi-GPU and multi-node training under torchrun: the process group and who trains what.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; without them training runs as one
process. GPUs talk over NCCL, CPUs over gloo.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from asr.precision import resolve_device


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """The one process that evaluates, logs and writes checkpoints."""
        return self.rank == 0


def join(device: str) -> tuple[World, torch.device]:
    """This process's place among torchrun's processes and the device it trains on."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(), resolve_device(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    on_gpu = device in ("auto", "cuda") and torch.cuda.is_available()
    chosen = torch.device("cuda", local_rank) if on_gpu else resolve_device(device)
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if chosen.type == "cuda" else "gloo")
    return World(rank, size), chosen


def leave() -> None:
    """Free what still holds the process group first (DDP keeps it in a reference cycle): a gloo group
    freed during interpreter shutdown aborts the process."""
    if dist.is_initialized():
        gc.collect()
        dist.destroy_process_group()


def anyone(world: World, flag: bool) -> bool:
    """Whether any process says yes, so that all of them stop at the same step."""
    if world.size == 1:
        return flag
    vote = torch.tensor([int(flag)], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(vote, op=dist.ReduceOp.MAX)
    return bool(vote.item())

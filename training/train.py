"""The training loop: length-bucketed CTC training with AdamW and a one-cycle schedule.

Every epoch's batches are fixed up front from the seed and the recordings' lengths, so the
run is one flat list of steps whose features DataLoader workers prepare ahead; a resume
state (model, optimizer, scheduler, RNGs, position in that list) written every
``checkpoint_every`` steps lets ``resume=True`` continue exactly where it stopped.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import math
import platform
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

import asr
from asr import checkpoint
from asr.atomic import replaced
from asr.features import FeatureConfig
from asr.model import AcousticModel, ModelConfig
from asr.precision import AUTOCAST, native_bf16
from asr.text import BLANK
from training import distributed
from training.augment import SpecAugment, spec_augment
from training.data import FeatureDataset, batches, feature_statistics, length_buckets
from training.evaluation import evaluate
from training.grow import starts, widen, widens

PRESETS = {
    "reference": ModelConfig(),
    "default": ModelConfig(
        cnn_channels=16,
        n_res_blocks=2,
        rnn_dim=320,
        rnn_hidden=320,
        n_rnn_layers=3,
        classifier_dim=320,
        running_mean_frames=200,
    ),
    "tiny": ModelConfig(
        cnn_channels=8, n_res_blocks=1, rnn_dim=128, rnn_hidden=128, n_rnn_layers=1, classifier_dim=128, dropout=0.0
    ),
}
"""Model sizes: the reference for GPUs; the bundled model's (5.5 M, picked for CPU training speed, centred on a running
mean since issue 18's eleventh sitting); tiny for tests."""


@dataclass
class TrainConfig:
    model: ModelConfig = PRESETS["default"]
    features: FeatureConfig = FeatureConfig()
    epochs: int = 30
    max_frames: int = 12000
    """Padded input frames per batch (120 s of audio): the batch size adapts to utterance length."""
    lr: float = 2e-3
    """Peak learning rate of the one-cycle schedule."""
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    spec_augment: SpecAugment | None = SpecAugment()
    """None trains on the features as they are."""
    seed: int = 0
    device: str = "auto"
    checkpoint_every: int = 200
    """Steps between resume states (one is also written at every evaluation)."""
    eval_every: int | None = None
    """Steps between evaluations on dev, each followed by a checkpoint if it is the best so far; None: at the end
    of every epoch. Either way the last step is evaluated."""
    precision: str = "fp32"
    """fp32, bf16 (autocast; CUDA, or CPUs with AVX-512 BF16) or fp16 (autocast with loss scaling; CUDA)."""


@dataclass
class TrainResult:
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    """One entry per evaluation (each epoch's end, or every ``eval_every`` steps): the mean training loss since the
    previous one and, with a dev set, dev CER and WER."""
    finished: bool = True
    """False when a stop limit ended this run early; ``resume=True`` continues it."""


def state_path(out: Path, rank: int = 0) -> Path:
    """Where the resume state of a run writing ``out`` lives.

    Under torchrun the other processes keep only their own random state, each in a file of its own,
    so that saving needs no collective (and works where a node cannot see the first one's disk).
    """
    return out.with_name(out.stem + (f".state.rank{rank}.pt" if rank else ".state.pt"))


def _save(snapshot: dict, path: Path) -> None:
    """Replace ``path`` whole, so that a run killed mid-write leaves the previous state readable."""
    with replaced(path) as temporary:
        torch.save(snapshot, temporary)


MAX_SKIPPED_IN_A_ROW = 20
"""Non-finite updates skipped in a row before training gives up: past a stray batch, the run itself is broken."""


class Optimisation:
    """One training step, shared by :func:`train` and the throughput benchmark."""

    def __init__(
        self, model: torch.nn.Module, config: TrainConfig, total_steps: int, device: torch.device, world_size: int = 1
    ):
        if config.precision not in AUTOCAST:
            raise ValueError(f"precision must be one of {', '.join(AUTOCAST)}, not {config.precision!r}")
        if config.precision == "bf16" and device.type == "cpu" and not native_bf16():
            warnings.warn(
                "bf16 on a CPU without AVX-512 BF16 or AMX is emulated: training runs about ten times slower "
                "than fp32 (measured on an AVX2 EPYC); use --precision fp32 here",
                stacklevel=2,
            )
        self.model, self.config, self.device, self.world_size = model, config, device, world_size
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, config.lr, total_steps=total_steps, pct_start=0.2
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
        self.autocast_dtype = AUTOCAST[config.precision]
        self.ctc = torch.nn.CTCLoss(blank=BLANK, reduction="none", zero_infinity=True)
        self.skipped_in_a_row = 0

    def step(
        self,
        feats: torch.Tensor,
        lengths: torch.Tensor,
        targets: torch.Tensor,
        target_lengths: torch.Tensor,
        global_batch_size: int | None = None,
    ) -> float:
        """One update; returns this batch's mean loss (per utterance, per target symbol, as CTC's "mean"),
        or NaN when the gradient was not finite and the update skipped.

        Under DDP, ``global_batch_size`` counts the utterances of every rank's batch: scaling the
        summed loss by world size over it makes DDP's gradient average the gradient of the
        mean over the union of the batches, exactly what one process would compute on it.
        """
        with torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            log_probs, out_lengths = self.model(feats.to(self.device), lengths)
        target_lengths = target_lengths.to(self.device)
        per_utterance = self.ctc(
            log_probs.float().transpose(0, 1), targets.to(self.device), out_lengths, target_lengths
        )
        per_utterance = per_utterance / target_lengths.clamp(min=1)
        loss = per_utterance.sum() * self.world_size / (global_batch_size or len(per_utterance))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        # One non-finite gradient (seen in bf16) would make every weight NaN for good: skip that update.
        # The norm is of the summed gradients, so under DDP every rank skips the same steps.
        finite = bool(torch.isfinite(norm))
        if finite:
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.skipped_in_a_row = 0 if finite else self.skipped_in_a_row + 1
        if self.skipped_in_a_row >= MAX_SKIPPED_IN_A_ROW:
            raise FloatingPointError(
                f"{self.skipped_in_a_row} updates in a row had non-finite gradients "
                f"(precision {self.config.precision}): lower --lr or train in fp32"
            )
        return per_utterance.mean().item() if finite else math.nan

    def state_dict(self) -> dict:
        return {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])


def _jsonable(config: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    bf16 = ", native bf16" if native_bf16() else ""
    return f"{_cpu_name()}{bf16}, {torch.get_num_threads()} threads"


def _cpu_name() -> str:
    """The CPU's model name: the architecture alone (all ``platform`` gives on Linux) cannot explain a speed."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _write_csv(history: list[dict], path: Path) -> None:
    columns = list(dict.fromkeys(key for entry in history for key in entry))
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, columns)
        writer.writeheader()
        writer.writerows(history)


def _evaluates_after(step: int, schedule: list[tuple[int, list]], every: int | None) -> bool:
    """Whether ``step`` (counted from 0) ends a stretch of training that is evaluated: see ``eval_every``."""
    if step + 1 == len(schedule):
        return True
    if every is not None:
        return (step + 1) % every == 0
    return schedule[step + 1][0] != schedule[step][0]


def train(
    config: TrainConfig,
    train_set: FeatureDataset,
    dev_set: FeatureDataset | None = None,
    out: Path | None = None,
    provenance: dict | None = None,
    resume: bool = False,
    stop_after_steps: int | None = None,
    stop_after_seconds: float | None = None,
    workers: int | None = None,
    init: Path | None = None,
) -> tuple[AcousticModel, TrainResult]:
    """Train a model; with ``out``, keep there the checkpoint with the best dev CER (or the last).

    Beside ``out`` go the resume state, the metrics of each evaluation as CSV and TensorBoard logs.
    Under torchrun every process trains its share of each step; the first one evaluates and writes.
    The stop limits end this call early (with a resume state written) so a long run can be
    split into sittings. ``workers`` processes prepare the batches (default: up to 4). ``init``
    starts from a checkpoint's weights and input statistics, with a schedule of this run's own; a checkpoint
    with narrower GRUs than ``config.model`` is widened first (:mod:`training.grow`).
    """
    world, device = distributed.join(config.device)
    writes = out is not None and world.is_main
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    generator = torch.Generator().manual_seed(config.seed + world.rank)
    model = AcousticModel(config.model)
    resuming = resume and out is not None and state_path(out).exists()
    if init is not None:
        start, info = checkpoint.load(init)
        if not starts(info.model_config, config.model) or info.feature_config != config.features:
            raise ValueError(f"{init} holds another model or feature configuration than this run's")
        if widens(info.model_config, config.model):  # the same copies in every process
            start = widen(start, config.model, torch.Generator().manual_seed(config.seed))
        model.load_state_dict(start.state_dict())
    elif not resuming:  # a resume state brings its own weights, input statistics included
        model.set_feature_statistics(feature_statistics(train_set, seed=config.seed))
    model.to(device)
    if world.size > 1:
        torch.manual_seed(config.seed + world.rank)  # each rank its own dropout masks
    trained = DistributedDataParallel(model) if world.size > 1 else model
    frame_seconds = config.model.frame_seconds(config.features)

    # Every rank draws the same buckets; a step gives each rank one of ``world.size`` neighbours
    # (an epoch's last few buckets that cannot go round are left out).
    frames = [r.frames for r in train_set.recordings]
    epochs = [length_buckets(frames, config.max_frames, rng) for _ in range(config.epochs)]
    schedule = [
        (epoch, batches[i : i + world.size])
        for epoch, batches in enumerate(epochs, 1)
        for i in range(0, len(batches) - world.size + 1, world.size)
    ]
    optimisation = Optimisation(trained, config, len(schedule), device, world.size)

    state = {"step": 0, "best_cer": float("inf"), "history": [], "epoch_losses": [], "elapsed": 0.0}
    if resuming:
        saved = torch.load(state_path(out), weights_only=True)
        # A state written before a setting existed ran with its default.
        theirs = _jsonable(TrainConfig()) | saved["config"]
        if theirs != _jsonable(config):
            differences = sorted(k for k in theirs if theirs[k] != _jsonable(config)[k])
            raise ValueError(f"cannot resume {state_path(out)}: its run used other settings ({', '.join(differences)})")
        model.load_state_dict(saved["model"])
        optimisation.load_state_dict(saved["optimisation"])
        state = saved["progress"]
        random_state = saved["rng"]
        if world.rank:
            own = state_path(out, world.rank)
            mine = torch.load(own, weights_only=True) if own.exists() else None
            if mine is not None and mine["step"] == state["step"]:
                random_state = mine["rng"]
            else:
                warnings.warn(f"{own} is missing or stale: resuming with rank 0's random state", stacklevel=2)
        torch.set_rng_state(random_state["torch"])
        generator.set_state(random_state["augment"])
        if device.type == "cuda" and "cuda" in random_state:
            torch.cuda.set_rng_state(random_state["cuda"], device)

    def save_state() -> None:
        """Every process saves its random state; the first one also the model, optimiser and progress."""
        if out is None:
            return
        random_state = {"torch": torch.get_rng_state(), "augment": generator.get_state()}
        if device.type == "cuda":
            random_state["cuda"] = torch.cuda.get_rng_state(device)
        if not world.is_main:
            out.parent.mkdir(parents=True, exist_ok=True)
            _save({"step": state["step"], "rng": random_state}, state_path(out, world.rank))
            return
        snapshot = {
            "config": _jsonable(config),
            "model": model.state_dict(),
            "optimisation": optimisation.state_dict(),
            "rng": random_state,
            "progress": {**state, "elapsed": state["elapsed"] + time.perf_counter() - started},
        }
        _save(snapshot, state_path(out))

    writer = None
    if writes:
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(out.with_suffix("")) + ".tensorboard", purge_step=state["step"] or None)

    started = time.perf_counter()
    first_step = state["step"]
    audio_seconds = 0.0
    progress = tqdm(total=len(schedule), initial=first_step, desc="training", unit="step", disable=not world.is_main)
    model.train()
    loader = batches(train_set, [group[world.rank] for _, group in schedule[first_step:]], workers)
    for step, (feats, lengths, targets, target_lengths) in enumerate(loader, first_step):
        epoch, group = schedule[step]
        if config.spec_augment is not None:
            feats = spec_augment(feats, lengths, generator, config.spec_augment, config.features)
        loss = optimisation.step(feats, lengths, targets, target_lengths, sum(map(len, group)))

        state["step"] = step + 1
        if math.isfinite(loss):
            state["epoch_losses"].append(loss)
        else:
            state["epoch_skipped"] = state.get("epoch_skipped", 0) + 1
        audio_seconds += sum(frames[i] for b in group for i in b) * config.features.frame_seconds
        speed = audio_seconds / (time.perf_counter() - started)
        lr = optimisation.scheduler.get_last_lr()[0]
        progress.update()
        progress.set_postfix(epoch=epoch, loss=f"{loss:.3f}", lr=f"{lr:.2e}", audio_s_per_s=f"{speed:.1f}")
        if writer:
            if math.isfinite(loss):
                writer.add_scalar("train/loss", loss, step + 1)
            writer.add_scalar("train/lr", lr, step + 1)
            writer.add_scalar("train/audio_seconds_per_second", speed, step + 1)

        if _evaluates_after(step, schedule, config.eval_every):
            entry = {
                "epoch": epoch,
                "steps": step + 1,
                "loss": sum(state["epoch_losses"]) / len(state["epoch_losses"]) if state["epoch_losses"] else math.nan,
                "audio_seconds_per_second": round(speed, 2),
                "skipped_steps": state.get("epoch_skipped", 0),
            }
            state["epoch_losses"], state["epoch_skipped"] = [], 0
            if dev_set and world.is_main:
                scores = evaluate(model, dev_set, frame_seconds)
                entry.update(dev_cer=scores["cer"], dev_wer=scores["wer"])
                model.train()
            state["history"].append(entry)
            if world.is_main:
                progress.write(json.dumps(entry))
            if writes:
                _write_csv(state["history"], out.with_suffix(".csv"))
                for key in ("dev_cer", "dev_wer"):
                    if key in entry:
                        writer.add_scalar(f"dev/{key[4:]}", entry[key], step + 1)
                score = entry.get("dev_cer", -epoch)
                if score <= state["best_cer"]:
                    state["best_cer"] = score
                    meta = {
                        **(provenance or {}),
                        "steps": step + 1,
                        "epoch": epoch,
                        "metrics": entry,
                        "train_config": _jsonable(config),
                        "hardware": _hardware(device),
                        "train_seconds": round(state["elapsed"] + time.perf_counter() - started),
                        "created": datetime.datetime.now(datetime.UTC).isoformat(),
                        "asr_version": asr.__version__,
                        "torch_version": torch.__version__,
                    }
                    checkpoint.save(out, model, config.features, meta)
            save_state()
        elif (step + 1) % config.checkpoint_every == 0:
            save_state()

        out_of_steps = stop_after_steps is not None and step + 1 - first_step >= stop_after_steps
        out_of_time = stop_after_seconds is not None and time.perf_counter() - started >= stop_after_seconds
        if step + 1 < len(schedule) and distributed.anyone(world, out_of_steps or out_of_time):
            save_state()
            break
    progress.close()
    if writer:
        writer.close()
    finished = state["step"] == len(schedule)
    return model.eval(), TrainResult(state["step"], time.perf_counter() - started, state["history"], finished)

"""The training loop: length-bucketed CTC training with AdamW and a one-cycle schedule."""

from __future__ import annotations

import dataclasses
import datetime
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

import asr
from asr import checkpoint
from asr.decoding import greedy_decode_batch
from asr.features import FeatureConfig, pad_batch
from asr.model import AcousticModel, ModelConfig
from asr.text import BLANK
from training.augment import spec_augment
from training.data import Example, length_buckets
from training.metrics import cer, wer

PRESETS = {
    "reference": ModelConfig(),
    "small": ModelConfig(
        cnn_channels=16, n_res_blocks=2, rnn_dim=256, rnn_hidden=256, n_rnn_layers=2, classifier_dim=256
    ),
    "tiny": ModelConfig(
        cnn_channels=8, n_res_blocks=1, rnn_dim=128, rnn_hidden=128, n_rnn_layers=1, classifier_dim=128, dropout=0.0
    ),
}
"""Named model sizes: the reference for GPUs, smaller ones that train on a CPU."""


@dataclass
class TrainConfig:
    model: ModelConfig = PRESETS["small"]
    features: FeatureConfig = FeatureConfig()
    epochs: int = 30
    max_frames: int = 12000
    """Padded input frames per batch (120 s of audio): the batch size adapts to utterance length."""
    lr: float = 2e-3
    """Peak learning rate of the one-cycle schedule."""
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    spec_augment: bool = True
    seed: int = 0
    device: str = "auto"


@dataclass
class TrainResult:
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)
    """One entry per epoch: mean training loss and, with a dev set, dev CER and WER."""


@torch.no_grad()
def evaluate(model: AcousticModel, examples: list[Example], frame_seconds: float, max_frames: int = 24000) -> dict:
    """Greedy CER and WER of ``model`` on ``examples``, and the hypotheses."""
    model.eval()
    device = next(model.parameters()).device
    hypotheses: dict[str, str] = {}
    for batch in length_buckets(examples, max_frames, random.Random(0)):
        feats, lengths = pad_batch([e.features for e in batch])
        log_probs, out_lengths = model(feats.to(device), lengths)
        for example, transcript in zip(batch, greedy_decode_batch(log_probs, out_lengths, frame_seconds), strict=True):
            hypotheses[example.id] = transcript.text
    references = [e.text for e in examples]
    ordered = [hypotheses[e.id] for e in examples]
    return {"cer": cer(references, ordered), "wer": wer(references, ordered), "hypotheses": ordered}


def train(
    config: TrainConfig,
    train_set: list[Example],
    dev_set: list[Example] | None = None,
    out: Path | None = None,
    provenance: dict | None = None,
) -> tuple[AcousticModel, TrainResult]:
    """Train a fresh model; with ``out``, write the checkpoint with the best dev CER (or the last)."""
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = checkpoint.resolve_device(config.device)
    model = AcousticModel(config.model)
    model.set_feature_statistics(torch.cat([e.features for e in train_set], dim=1))
    model.to(device)
    frame_seconds = config.model.frame_seconds(config.features)

    epochs = [length_buckets(train_set, config.max_frames, rng) for _ in range(config.epochs)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.lr, total_steps=sum(map(len, epochs)), pct_start=0.2
    )
    ctc = torch.nn.CTCLoss(blank=BLANK, zero_infinity=True)

    result = TrainResult(steps=0, seconds=0.0)
    best_cer = float("inf")
    started = time.perf_counter()
    progress = tqdm(total=sum(map(len, epochs)), desc="training", unit="batch")
    for epoch, batches in enumerate(epochs, 1):
        model.train()
        losses = []
        for batch in batches:
            feats, lengths = pad_batch([e.features for e in batch])
            if config.spec_augment:
                feats = spec_augment(feats, lengths, generator)
            targets = torch.cat([e.targets for e in batch])
            target_lengths = torch.tensor([len(e.targets) for e in batch])
            log_probs, out_lengths = model(feats.to(device), lengths)
            loss = ctc(log_probs.transpose(0, 1), targets.to(device), out_lengths, target_lengths.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            result.steps += 1
            progress.update()
            progress.set_postfix(epoch=epoch, loss=f"{losses[-1]:.3f}")
        entry = {"epoch": epoch, "steps": result.steps, "loss": sum(losses) / len(losses)}
        if dev_set:
            scores = evaluate(model, dev_set, frame_seconds)
            entry.update(dev_cer=scores["cer"], dev_wer=scores["wer"])
        result.history.append(entry)
        progress.write(json.dumps(entry))
        score = entry.get("dev_cer", -epoch)
        if out is not None and score <= best_cer:
            best_cer = score
            meta = {
                **(provenance or {}),
                "steps": result.steps,
                "epoch": epoch,
                "metrics": entry,
                "train_config": _jsonable(config),
                "created": datetime.datetime.now(datetime.UTC).isoformat(),
                "asr_version": asr.__version__,
                "torch_version": torch.__version__,
            }
            checkpoint.save(out, model, config.features, meta)
    progress.close()
    result.seconds = time.perf_counter() - started
    return model.eval(), result


def _jsonable(config: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))

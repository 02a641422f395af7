"""A loaded model with its features and decoder: waveforms in, transcripts out."""

from __future__ import annotations

from pathlib import Path

import torch

from asr import checkpoint
from asr.decoding import Transcript, greedy_decode, greedy_decode_batch
from asr.features import features, pad_batch
from asr.incremental import Settled, advance
from asr.model import AcousticModel
from asr.precision import autocast, prepare, resolve


class Transcriber:
    def __init__(
        self, model: AcousticModel, info: checkpoint.CheckpointInfo, name: str = "model", precision: str = "auto"
    ):
        """``precision``: one of :data:`asr.precision.PRECISIONS`; ``auto`` picks the fastest for the device."""
        self.device = next(model.parameters()).device
        self.num_parameters = model.num_parameters()
        """Counted before int8 quantisation, which turns weights into packed buffers."""
        self.precision = resolve(precision, self.device)
        self.model = prepare(model, self.precision)
        self.info = info
        self.name = name
        self.frame_seconds = model.config.frame_seconds(info.feature_config)

    @classmethod
    def from_checkpoint(
        cls, path: Path | str, device: torch.device | str = "auto", precision: str = "auto"
    ) -> Transcriber:
        return cls(*checkpoint.load(path, device), name=Path(path).stem, precision=precision)

    def _to_device(self, waveform: torch.Tensor) -> torch.Tensor:
        """On a GPU, copy from pinned memory without blocking, so the copy overlaps other work."""
        if self.device.type == "cuda":
            return waveform.pin_memory().to(self.device, non_blocking=True)
        return waveform

    @torch.inference_mode()
    def transcribe(self, audio: list[tuple[torch.Tensor, int]]) -> list[Transcript]:
        """Decode several ``(waveform, sample_rate)`` clips in one padded batch."""
        feats = [features(self._to_device(waveform), rate, self.info.feature_config) for waveform, rate in audio]
        with autocast(self.precision, self.device):
            log_probs, out_lengths = self.model(*pad_batch(feats))
        durations = [waveform.shape[-1] / rate for waveform, rate in audio]
        return greedy_decode_batch(log_probs, out_lengths, self.frame_seconds, durations)

    @torch.inference_mode()
    def advance(
        self, audio: list[torch.Tensor], settled: list[Settled], window: int | None
    ) -> tuple[list[Transcript], list[Settled]]:
        """Read growing utterances (mono, at the model's rate) at a bounded cost: see :mod:`asr.incremental`."""
        audio = [self._to_device(a) for a in audio]
        with autocast(self.precision, self.device):
            log_probs, settled = advance(self.model, self.info.feature_config, audio, settled, window)
        rate = self.info.feature_config.sample_rate
        transcripts = [
            greedy_decode(lp, self.frame_seconds, a.numel() / rate) for lp, a in zip(log_probs, audio, strict=True)
        ]
        return transcripts, settled

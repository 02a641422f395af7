"""A loaded model with its features and decoder: waveforms in, transcripts out."""

from __future__ import annotations

from pathlib import Path

import torch

from asr import checkpoint
from asr.decoding import Transcript, greedy_decode_batch
from asr.features import features, pad_batch
from asr.model import AcousticModel


class Transcriber:
    def __init__(self, model: AcousticModel, info: checkpoint.CheckpointInfo, name: str = "model"):
        self.model = model
        self.info = info
        self.name = name
        self.device = next(model.parameters()).device
        self.frame_seconds = model.config.frame_seconds(info.feature_config)

    @classmethod
    def from_checkpoint(cls, path: Path | str, device: torch.device | str = "auto") -> Transcriber:
        return cls(*checkpoint.load(path, device), name=Path(path).stem)

    @torch.inference_mode()
    def transcribe(self, audio: list[tuple[torch.Tensor, int]]) -> list[Transcript]:
        """Decode several ``(waveform, sample_rate)`` clips in one padded batch."""
        feats = [features(waveform.to(self.device), rate, self.info.feature_config) for waveform, rate in audio]
        batch, lengths = pad_batch(feats)
        log_probs, out_lengths = self.model(batch, lengths)
        durations = [waveform.shape[-1] / rate for waveform, rate in audio]
        return greedy_decode_batch(log_probs, out_lengths, self.frame_seconds, durations)

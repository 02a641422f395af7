"""A loaded model with its features and decoders: waveforms in, transcripts out."""

from __future__ import annotations

from pathlib import Path

import torch

from asr import checkpoint
from asr.beam import Beam, BeamDecoder
from asr.decoding import Greedy, greedy_decode
from asr.features import features, pad_batch
from asr.incremental import Settled, advance
from asr.language_model import LanguageModel
from asr.model import AcousticModel
from asr.precision import autocast, prepare, resolve
from asr.transcript import Transcript

Decoding = Greedy | Beam
"""How log-probabilities become transcripts: greedy, or beam search with the LM and these options."""


class Transcriber:
    def __init__(
        self,
        model: AcousticModel,
        info: checkpoint.CheckpointInfo,
        name: str = "model",
        precision: str = "auto",
        lm: LanguageModel | None = None,
    ):
        """``precision``: one of :data:`asr.precision.PRECISIONS`; ``auto`` picks the fastest for the device.
        With ``lm``, transcripts come from beam search with it unless a call asks for :class:`Greedy`."""
        self.device = next(model.parameters()).device
        self.num_parameters = model.num_parameters()
        """Counted before int8 quantisation, which turns weights into packed buffers."""
        self.precision = resolve(precision, self.device)
        self.model = prepare(model, self.precision)
        self.info = info
        self.name = name
        self.frame_seconds = model.config.frame_seconds(info.feature_config)
        self.decoder = BeamDecoder(lm) if lm is not None else None
        self.default_decoding: Decoding = Beam() if lm is not None else Greedy()

    @classmethod
    def from_checkpoint(
        cls,
        path: Path | str,
        device: torch.device | str = "auto",
        precision: str = "auto",
        lm: Path | str | None = None,
    ) -> Transcriber:
        bundle = LanguageModel.load(lm) if lm is not None else None
        return cls(*checkpoint.load(path, device), name=Path(path).stem, precision=precision, lm=bundle)

    def _to_device(self, waveform: torch.Tensor) -> torch.Tensor:
        """On a GPU, copy from pinned memory without blocking, so the copy overlaps other work."""
        if self.device.type == "cuda":
            return waveform.pin_memory().to(self.device, non_blocking=True)
        return waveform

    @torch.inference_mode()
    def log_probs(self, audio: list[tuple[torch.Tensor, int]]) -> list[torch.Tensor]:
        """Each ``(waveform, sample_rate)`` clip's ``(frames, classes)`` log-probabilities, from one padded batch."""
        feats = [features(self._to_device(waveform), rate, self.info.feature_config) for waveform, rate in audio]
        with autocast(self.precision, self.device):
            log_probs, out_lengths = self.model(*pad_batch(feats))
        return [lp[:n].float().cpu() for lp, n in zip(log_probs, out_lengths.tolist(), strict=True)]

    def decode(self, log_probs: torch.Tensor, duration: float, decoding: Decoding | None = None) -> list[Transcript]:
        """The best transcript, then up to ``alternatives - 1`` others where a beam search asks for them;
        ``decoding`` defaults to :attr:`default_decoding`."""
        decoding = self.default_decoding if decoding is None else decoding
        if isinstance(decoding, Greedy):
            return [greedy_decode(log_probs, self.frame_seconds, duration)]
        if self.decoder is None:
            raise ValueError("beam search needs a language model: load the transcriber with one")
        return self.decoder.decode(log_probs, self.frame_seconds, duration, decoding)

    def transcribe(self, audio: list[tuple[torch.Tensor, int]], decoding: Decoding | None = None) -> list[Transcript]:
        """Decode several ``(waveform, sample_rate)`` clips in one padded batch: the best transcript of each."""
        durations = [waveform.shape[-1] / rate for waveform, rate in audio]
        return [self.decode(lp, d, decoding)[0] for lp, d in zip(self.log_probs(audio), durations, strict=True)]

    @torch.inference_mode()
    def advance(
        self, audio: list[torch.Tensor], settled: list[Settled], window: int | None
    ) -> tuple[list[torch.Tensor], list[Settled]]:
        """Read growing utterances (mono, at the model's rate) at a bounded cost: see :mod:`asr.incremental`.
        Returns their log-probabilities, to :meth:`decode`."""
        audio = [self._to_device(a) for a in audio]
        with autocast(self.precision, self.device):
            log_probs, settled = advance(self.model, self.info.feature_config, audio, settled, window)
        return [lp.float().cpu() for lp in log_probs], settled

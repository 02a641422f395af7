"""Reading a growing utterance again and again at a bounded cost, with a bidirectional model.

A partial result needs the log-probabilities of the whole open utterance, and re-running the
model over all of it costs time that grows with its length. Instead:

- the front end (features and convolutions) runs once per frame: its outputs are final as soon
  as :meth:`AcousticModel.front_end_context` newer frames exist, and are kept from then on (with a
  running mean, ``ModelConfig.running_mean_frames``, so is the sum of the features before them);
- each read settles the frames older than a window of ``window`` frames for good: their
  log-probabilities are kept, and so is each GRU layer's forward-direction state at the window's
  start. The next read runs each GRU layer over the window alone: forward from the kept state,
  backward from the newest frame.

A settled frame has seen at least ``window`` frames of the future, so little is lost;
``window=None`` never settles anything: a full re-read, up to float rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asr.features import FeatureConfig, log_mel, num_frames, pad_batch
from asr.model import AcousticModel


@dataclass(frozen=True)
class Settled:
    """What an utterance's reads so far have settled: nothing, for a new utterance."""

    frames: int = 0
    """Output frames whose log-probabilities are final."""
    log_probs: torch.Tensor | None = None
    """``(frames, classes)``: those log-probabilities."""
    forward: torch.Tensor | None = None
    """``(layers, hidden)``: each GRU layer's forward state after the last settled frame."""
    front: torch.Tensor | None = None
    """``(n, rnn_dim)``: the front end's final outputs for frames ``frames`` to ``frames + n``."""
    heard: torch.Tensor | None = None
    """``(n_mels,)``: the per-bin sum of the features before the next read's first (a running mean's input)."""

    @property
    def front_frames(self) -> int:
        """Frames whose front-end output is final (kept in ``front`` from ``frames`` on)."""
        return self.frames + (0 if self.front is None else self.front.shape[0])


def advance(
    model: AcousticModel,
    features: FeatureConfig,
    audio: list[torch.Tensor],
    settled: list[Settled],
    window: int | None,
    final: bool = False,
) -> tuple[list[torch.Tensor], list[Settled]]:
    """Read each utterance's ``audio`` so far (mono, at the model's rate) in one batch.

    Returns each utterance's ``(frames, classes)`` log-probabilities and what is settled now.
    ``final`` settles everything: the utterances are over.
    An utterance whose audio no longer reaches past its settled frames (it was cut shorter) is
    read from the start.
    """
    context, stride = model.front_end_context(), model.config.stride
    totals = [int(model.output_lengths(torch.tensor(num_frames(a.numel(), features)))) for a in audio]
    settled = [s if s.front_frames + context <= total else Settled() for s, total in zip(settled, totals, strict=True)]
    starts = [max(0, s.front_frames - context) for s in settled]
    device = model.feature_mean.device

    feats = [_features_from(a.to(device), start * stride, features) for a, start in zip(audio, starts, strict=True)]
    before = (
        torch.stack([s.heard if s.heard is not None else feats[0].new_zeros(feats[0].shape[0]) for s in settled]),
        torch.tensor([start * stride for start in starts], device=device, dtype=torch.float32),
    )
    computed, _ = model.front_end(*pad_batch(feats), heard=before)
    fronts = [
        torch.cat([s.front, computed[i, s.front_frames - start : total - start]])
        if s.front is not None
        else computed[i, s.frames - start : total - start]
        for i, (s, start, total) in enumerate(zip(settled, starts, totals, strict=True))
    ]
    lengths = torch.tensor([f.shape[0] for f in fronts])
    keep = [_settling(s.frames, total, window, final) for s, total in zip(settled, totals, strict=True)]

    x = torch.nn.utils.rnn.pad_sequence(fronts, batch_first=True)
    forward_states = []
    for layer, rnn in enumerate(model.rnns):
        hidden = rnn.gru.hidden_size
        start_states = torch.stack(
            [s.forward[layer] if s.forward is not None else x.new_zeros(hidden) for s in settled]
        )
        state = torch.stack([start_states, torch.zeros_like(start_states)])
        packed = rnn(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False), state)
        x, _ = pad_packed_sequence(packed, batch_first=True)
        forward_states.append([x[i, k - 1, :hidden] if k > 0 else None for i, k in enumerate(keep)])
    log_probs = model.log_probs(x)

    results, updated = [], []
    for i, (s, k, total) in enumerate(zip(settled, keep, totals, strict=True)):
        full = log_probs[i, : lengths[i]]
        if s.log_probs is not None:
            full = torch.cat([s.log_probs, full])
        results.append(full)
        forward = s.forward if k == 0 else torch.stack([states[i] for states in forward_states])
        front = fronts[i][k : max(k, total - context - s.frames)].clone()
        frames = s.frames + k
        next_start = max(0, frames + len(front) - context) * stride  # the next read's first feature frame
        summed = feats[i][:, : next_start - starts[i] * stride].sum(dim=-1)
        heard = summed if s.heard is None else s.heard + summed
        updated.append(Settled(frames, full[:frames].clone(), forward, front if len(front) else None, heard))
    return results, updated


def _features_from(audio: torch.Tensor, first: int, config: FeatureConfig) -> torch.Tensor:
    """Features of ``audio`` from frame ``first`` on, each as in the whole clip's: the STFT starts early
    enough that no frame kept reads its padding."""
    lead = min(first, math.ceil(config.n_fft / 2 / config.hop_length))
    return log_mel(audio[(first - lead) * config.hop_length :], config)[:, lead:]


def _settling(frames: int, total: int, window: int | None, final: bool) -> int:
    """How many more frames this read settles: all at the end, else those older than the window."""
    if final:
        return total - frames
    if window is None:
        return 0
    return max(0, total - window - frames)

"""The Deep-Speech-2-style acoustic model: residual CNN front end, bidirectional GRUs, CTC head."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from asr.features import FeatureConfig
from asr.text import NUM_CLASSES


@dataclass(frozen=True)
class ModelConfig:
    """Every size of the model; the defaults are the reference size (about 23.7 M parameters)."""

    n_mels: int = 128
    cnn_channels: int = 32
    n_res_blocks: int = 3
    rnn_dim: int = 512
    rnn_hidden: int = 512
    n_rnn_layers: int = 5
    classifier_dim: int = 512
    n_classes: int = NUM_CLASSES
    dropout: float = 0.1
    stride: int = 2
    """Of the first convolution, on both the time and the mel axis."""
    running_mean_frames: int = 0
    """0: inputs are centred on the training set's per-bin mean. N > 0: on the mean of the utterance so far,
    begun as if N frames at the training set's mean had been heard: a microphone's or room's fixed colouring is
    a constant in the log-Mel domain and cancels once the utterance outweighs the prior, and because the mean
    looks only backwards, a streamed frame reads the same as in the whole file."""

    def to_dict(self) -> dict:
        return asdict(self)

    def frame_seconds(self, features: FeatureConfig) -> float:
        """Seconds per output frame: the feature hop times the first convolution's time stride."""
        return features.frame_seconds * self.stride

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config fields: {', '.join(unknown)}")
        return cls(**values)

    def same_shape(self, other: ModelConfig) -> bool:
        """Whether ``other`` holds the same weights: only dropout and the input centring may differ."""
        return dataclasses.replace(other, dropout=self.dropout, running_mean_frames=self.running_mean_frames) == self


def _time_mask(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero every frame at or beyond its utterance's length on the time axis of ``(batch, channels, frames,
    mels)`` maps; a batch without padding is returned as it is.

    Convolutions see their neighbours, so without this an utterance's last frames would
    read its batch-mates' padding instead of the zeros they see when run alone.
    """
    if bool((lengths >= x.shape[2]).all()):
        return x
    keep = torch.arange(x.shape[2], device=x.device) < lengths.to(x.device)[:, None]
    return x * keep[:, None, :, None].to(x.dtype)


class _TimeMelConv2d(nn.Conv2d):
    """A convolution whose kernels are stored ``(mels, frames)``, as checkpoints hold them, run over
    ``(frames, mels)`` maps: with the mel axis last, each LayerNorm reads contiguous memory and no map is
    transposed (the front end runs 1.5x faster than over ``(mels, frames)`` maps, on one CPU core)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight.transpose(2, 3), self.bias)


class ResidualCNN(nn.Module):
    """Over ``(batch, channels, frames, mels)`` maps."""

    def __init__(self, channels: int, n_feats: int, dropout: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(n_feats)
        self.conv1 = _TimeMelConv2d(channels, channels, 3, padding=1)
        self.norm2 = nn.LayerNorm(n_feats)
        self.conv2 = _TimeMelConv2d(channels, channels, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        y = self.conv1(_time_mask(self.dropout(self.act(self.norm1(x))), lengths))
        y = self.conv2(_time_mask(self.dropout(self.act(self.norm2(y))), lengths))
        return x + y


class BidirectionalGRU(nn.Module):
    """LayerNorm, GELU, GRU and dropout over a packed sequence, so padding is never read."""

    def __init__(self, input_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(input_dim)
        self.act = nn.GELU()
        self.gru = nn.GRU(input_dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: PackedSequence, state: torch.Tensor | None = None) -> PackedSequence:
        """``state``: optional ``(2, batch, hidden)`` initial states of the forward and backward directions."""
        x = x._replace(data=self.act(self.norm(x.data)))
        y, _ = self.gru(x, state)
        return y._replace(data=self.dropout(y.data))


class AcousticModel(nn.Module):
    def __init__(self, config: ModelConfig = ModelConfig()):
        super().__init__()
        if config.n_mels % config.stride:
            raise ValueError(f"n_mels ({config.n_mels}) must be divisible by the stride ({config.stride})")
        self.config = config
        n_feats = config.n_mels // config.stride
        self.register_buffer("feature_mean", torch.zeros(config.n_mels))
        self.register_buffer("feature_std", torch.ones(config.n_mels))
        self.conv = _TimeMelConv2d(1, config.cnn_channels, 3, stride=config.stride, padding=1)
        self.res_blocks = nn.ModuleList(
            ResidualCNN(config.cnn_channels, n_feats, config.dropout) for _ in range(config.n_res_blocks)
        )
        self.project = nn.Linear(config.cnn_channels * n_feats, config.rnn_dim)
        self.rnns = nn.ModuleList(
            BidirectionalGRU(config.rnn_dim if i == 0 else 2 * config.rnn_hidden, config.rnn_hidden, config.dropout)
            for i in range(config.n_rnn_layers)
        )
        self.classifier = nn.Sequential(
            nn.Linear(2 * config.rnn_hidden, config.classifier_dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.classifier_dim, config.n_classes),
        )

    @torch.no_grad()
    def set_feature_statistics(self, frames: torch.Tensor) -> None:
        """Normalise inputs by the per-mel-bin mean and deviation of ``(n_mels, frames)`` training data.

        Fixed statistics (not per-utterance ones) keep a frame's input independent of
        what follows it, which streaming needs; they live in the checkpoint as buffers.
        """
        self.feature_mean.copy_(frames.mean(dim=1))
        self.feature_std.copy_(frames.std(dim=1).clamp(min=1e-3))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames out for ``lengths`` frames in: the first convolution's stride divides time."""
        return (lengths - 1) // self.config.stride + 1

    def front_end_context(self) -> int:
        """Output frames either side that one front-end output frame reads: two per residual block
        (two 3x3 convolutions), one for the strided convolution and one for the STFT window."""
        return 2 * self.config.n_res_blocks + 2

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, n_mels, frames)`` padded features and their lengths to CTC log-probabilities.

        Returns ``log_probs`` shaped ``(batch, frames_out, n_classes)`` and ``out_lengths``;
        each utterance's output is the same alone as padded in a batch.
        """
        x, out_lengths = self.front_end(features, lengths)
        packed = pack_padded_sequence(x, out_lengths.cpu(), batch_first=True, enforce_sorted=False)
        for rnn in self.rnns:
            packed = rnn(packed)
        packed = packed._replace(data=self.log_probs(packed.data))
        log_probs, _ = pad_packed_sequence(packed, batch_first=True, total_length=x.shape[1])
        return log_probs, out_lengths

    def front_end(
        self,
        features: torch.Tensor,
        lengths: torch.Tensor | None = None,
        heard: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Features to the GRUs' ``(batch, frames_out, rnn_dim)`` input, and its lengths.

        Every output frame depends only on the :meth:`front_end_context` frames either side of it
        (and, with a running mean, on the sum of the frames before it), which is what lets streaming
        compute it once. ``heard``: the ``(batch, n_mels)`` per-bin sums and the ``(batch,)`` numbers of
        the frames of each utterance that came before ``features``.
        """
        batch, n_mels, frames = features.shape
        if n_mels != self.config.n_mels:
            raise ValueError(f"the model takes {self.config.n_mels} mel bins, got {n_mels}")
        if lengths is None:
            lengths = torch.full((batch,), frames, dtype=torch.long)
        lengths = lengths.to(device=features.device, dtype=torch.long)
        out_lengths = self.output_lengths(lengths)

        x = ((features - self.centre(features, heard)) / self.feature_std[:, None]).transpose(1, 2).unsqueeze(1)
        x = _time_mask(self.conv(_time_mask(x, lengths)), out_lengths)
        for block in self.res_blocks:
            x = block(x, out_lengths)
        return self.project(x.transpose(1, 2).flatten(2)), out_lengths

    def centre(self, features: torch.Tensor, heard: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """What each frame of ``(batch, n_mels, frames)`` features is centred on (see ``running_mean_frames``)."""
        if not self.config.running_mean_frames:
            return self.feature_mean[:, None]
        sums = features.float().cumsum(dim=-1)
        counts = torch.arange(1, features.shape[-1] + 1, device=features.device, dtype=sums.dtype)
        if heard is not None:
            sums = sums + heard[0][..., None]
            counts = counts + heard[1][:, None]
        prior = self.config.running_mean_frames
        return ((sums + prior * self.feature_mean[:, None]) / (counts[..., None, :] + prior)).to(features.dtype)

    def log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """The classifier over the last GRU's outputs, as float32 log-probabilities."""
        return torch.log_softmax(self.classifier(hidden).float(), dim=-1)

"""Silero VAD's network in PyTorch, with each stream's state held by the caller.

The ``silero-vad`` wheel ships the weights (``silero_vad_16k.safetensors``) beside a TorchScript model
that keeps one hidden state inside itself; written out here, the state belongs to each stream. The
package itself is never imported: importing it sets PyTorch's thread count to 1 for the whole process.

Per 32 ms chunk of 16 kHz audio (with the 4 ms before it as context) the network gives the probability
that it holds speech: a learned STFT, four convolutions, an LSTM cell over the chunks, and a sigmoid. A
message's chunks go through the convolutions as one batch and through the LSTM in one call.
"""

from __future__ import annotations

import functools
from importlib.metadata import distribution
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

RATE = 16000
CHUNK = 512
"""Samples the network reads per step (32 ms)."""
CONTEXT = 64
"""Samples of the previous chunk it sees again at each step."""
HIDDEN = 128


class SileroNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stft_conv = nn.Conv1d(1, 258, kernel_size=256, stride=128, bias=False)
        self.conv1 = nn.Conv1d(129, 128, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(128, 64, kernel_size=3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(64, 64, kernel_size=3, stride=2, padding=1)
        self.conv4 = nn.Conv1d(64, 128, kernel_size=3, padding=1)
        self.lstm = nn.LSTM(HIDDEN, HIDDEN, batch_first=True)
        """Silero's LSTM cell, run over a message's chunks in one call."""
        self.final_conv = nn.Conv1d(HIDDEN, 1, kernel_size=1)

    def encode(self, chunks: torch.Tensor) -> torch.Tensor:
        """``(n, CONTEXT + CHUNK)`` samples to ``(n, HIDDEN)`` features, all chunks at once."""
        x = nn.functional.pad(chunks, (0, CONTEXT), mode="reflect").unsqueeze(1)
        x = self.stft_conv(x)
        x = (x[:, :129].square() + x[:, 129:].square()).sqrt()
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = conv(x).relu()
        return x.squeeze(-1)

    def forward(self, features: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, tuple]:
        """One stream's ``(n, HIDDEN)`` chunk features in order: speech probabilities ``(n,)`` and the new state."""
        hidden, state = self.lstm(features[None], state)
        return self.final_conv(hidden[0].relu().unsqueeze(-1)).sigmoid().flatten(), state


def weights_path() -> Path:
    """The weights in the installed ``silero-vad`` wheel, found without importing it."""
    return Path(distribution("silero-vad").locate_file("silero_vad/data/silero_vad_16k.safetensors"))


@functools.cache
def network() -> SileroNet:
    weights = load_file(weights_path())
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        weights[f"lstm.{name}_l0"] = weights.pop(f"lstm_cell.{name}")
    net = SileroNet()
    net.load_state_dict(weights)
    return net.eval().requires_grad_(False)


class SpeechProbabilities:
    """One stream's detector state: 16 kHz samples in, a speech probability per completed chunk out."""

    def __init__(self):
        self._pending = torch.zeros(CONTEXT)
        """The last chunk's context, then samples that do not yet fill a chunk."""
        self._state = (torch.zeros(1, 1, HIDDEN), torch.zeros(1, 1, HIDDEN))

    @torch.inference_mode()
    def feed(self, samples: torch.Tensor) -> torch.Tensor:
        """Probabilities of the chunks that ``samples`` complete (none while a chunk is still filling)."""
        audio = torch.cat((self._pending, samples.float()))
        count = (audio.numel() - CONTEXT) // CHUNK
        if count == 0:
            self._pending = audio
            return torch.zeros(0)
        windows = audio[: CONTEXT + count * CHUNK].unfold(0, CONTEXT + CHUNK, CHUNK)
        net = network()
        probabilities, self._state = net(net.encode(windows), self._state)
        self._pending = audio[count * CHUNK :]
        return probabilities

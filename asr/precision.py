"""The device to run on, the numeric paths inference can take, and the fastest one for each device.

Measured on the test set with the bundled model (bench/cpu_paths.py, docs/performance.md): on
CPU, int8 dynamic quantisation of the GRUs and linear layers (with the convolutions in bf16 where
the CPU has it natively) is about twice as fast as fp32 and costs 0.1 points of CER, so it is the
CPU default; bf16 autocast of the whole model helps only large batches. On CUDA, autocast to bf16 (fp16 where the GPU
lacks bf16) runs the cuDNN GRUs and the GEMMs on tensor cores.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Literal

import torch
from torch import nn

Precision = Literal["auto", "fp32", "bf16", "fp16", "int8"]
PRECISIONS: tuple[str, ...] = Precision.__args__
AUTOCAST: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""The precisions of autocast (or none), which training can use too, and the type each computes in."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available here")
    return device


def resolve(precision: str, device: torch.device) -> str:
    """``auto`` made concrete for ``device``; a combination the device cannot run is refused."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "int8"
    if precision == "int8" and device.type != "cpu":
        raise ValueError("int8 dynamic quantisation runs on the CPU only; use bf16 or fp16 on a GPU")
    return precision


def prepare(model: nn.Module, precision: str) -> nn.Module:
    """The model to run: int8 quantises its GRU and linear weights, the others keep fp32 weights.

    With int8 the convolutional front end becomes the larger cost, so on CPUs with native bf16
    it runs in bf16 (1.3x the whole model's speed) and hands float32 on to the int8 layers.
    """
    if precision != "int8":
        return model
    with warnings.catch_warnings():  # torch.ao's deprecation notice: see docs/performance.md
        warnings.simplefilter("ignore")
        model = torch.ao.quantization.quantize_dynamic(model, {nn.GRU, nn.Linear}, dtype=torch.qint8)
    if native_bf16():
        model.conv = _InBf16(model.conv)
        model.res_blocks = nn.ModuleList(_InBf16(block) for block in model.res_blocks)
    return model


def native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (AVX-512 BF16 or AMX); emulated, it is slower."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


class _InBf16(nn.Module):
    """A CPU block run under bf16 autocast, its output back in float32.

    Maps at most two frames long stay in float32: oneDNN's bf16 kernel for the strided convolution
    (torch 2.14.1, AMX) returns garbage, even NaN, when its output is one frame long.
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        """``args[0]``: ``(batch, channels, frames, mels)`` maps."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args[0].shape[2] > 2):
            return self.block(*args).float()


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context a forward pass runs in: autocast for bf16 and fp16, nothing otherwise."""
    dtype = AUTOCAST.get(precision)
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)

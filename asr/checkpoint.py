"""One self-describing checkpoint file: weights plus everything needed to use them.

The file is safetensors, so loading never runs pickled code. Its string header holds
the format version, the model and feature configs, the alphabet and the provenance
(data, steps, metrics), each as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from asr.atomic import replaced
from asr.features import FeatureConfig
from asr.model import AcousticModel, ModelConfig
from asr.precision import resolve_device
from asr.text import ALPHABET

FORMAT = "asr-checkpoint"
FORMAT_VERSION = 1
DEFAULT_CHECKPOINT = Path(__file__).parent / "models" / "default.safetensors"
"""The small model bundled with the package, served when no checkpoint is configured."""


class CheckpointError(ValueError):
    """The file is not a checkpoint this build can load; the message names what differs."""


@dataclass(frozen=True)
class CheckpointInfo:
    model_config: ModelConfig
    feature_config: FeatureConfig
    alphabet: str = ALPHABET
    provenance: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def header(self) -> dict[str, str]:
        return {
            "format": FORMAT,
            "format_version": str(self.format_version),
            "model_config": json.dumps(self.model_config.to_dict()),
            "feature_config": json.dumps(self.feature_config.to_dict()),
            "alphabet": json.dumps(self.alphabet),
            "provenance": json.dumps(self.provenance),
        }


def save(path: Path | str, model: AcousticModel, feature_config: FeatureConfig, provenance: dict) -> None:
    """Write ``model`` with its configs and provenance, whole or not at all."""
    info = CheckpointInfo(model.config, feature_config, provenance=provenance)
    tensors = {name: t.detach().cpu().contiguous() for name, t in model.state_dict().items()}
    with replaced(path) as temporary:
        safetensors.torch.save_file(tensors, str(temporary), metadata=info.header())


def read_info(path: Path | str) -> CheckpointInfo:
    """The checkpoint's header, validated, without reading the weights."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except Exception as error:  # safetensors raises its own untyped errors for foreign files
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({error})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an {FORMAT} file (its header says format={header.get('format')!r})")
    version = header.get("format_version")
    if version != str(FORMAT_VERSION):
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is not supported; this build reads version {FORMAT_VERSION}"
        )
    try:
        alphabet = json.loads(header["alphabet"])
        model_config = ModelConfig.from_dict(json.loads(header["model_config"]))
        feature_config = FeatureConfig(**json.loads(header["feature_config"]))
        provenance = json.loads(header.get("provenance", "{}"))
    except KeyError as error:
        raise CheckpointError(f"{path}: the header lacks {error}") from None
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid header: {error}") from None
    if alphabet != ALPHABET:
        raise CheckpointError(f"{path}: the checkpoint's alphabet {alphabet!r} differs from this build's {ALPHABET!r}")
    return CheckpointInfo(model_config, feature_config, alphabet, provenance, FORMAT_VERSION)


def load(path: Path | str, device: torch.device | str = "cpu") -> tuple[AcousticModel, CheckpointInfo]:
    """The model ready for inference on ``device`` (``auto`` allowed), and the checkpoint's info."""
    info = read_info(path)
    device = resolve_device(device) if isinstance(device, str) else device
    model = AcousticModel(info.model_config)
    tensors = safetensors.torch.load_file(str(path))
    expected = model.state_dict()
    problems = [f"missing tensor {name}" for name in expected.keys() - tensors.keys()]
    problems += [f"unexpected tensor {name}" for name in tensors.keys() - expected.keys()]
    problems += [
        f"tensor {name} has shape {tuple(tensors[name].shape)} but the model config needs {tuple(t.shape)}"
        for name, t in expected.items()
        if name in tensors and tensors[name].shape != t.shape
    ]
    if problems:
        raise CheckpointError(
            f"{path}: the weights do not match the checkpoint's model config: " + "; ".join(sorted(problems))
        )
    model.load_state_dict(tensors)
    return model.to(device).eval(), info

"""CPU inference paths side by side: speed and CER of the bundled model on a corpus's test split.

fp32, bf16 autocast and int8 dynamic quantisation are the service's ``ASR_PRECISION`` choices;
ONNX Runtime and torch.compile (inductor) are measured here only. Neither can take the packed
sequences the model runs on, so they run a padded twin of it: each backward GRU reads its
sequence reversed within its own length, which keeps padded batches exact.

    python -m bench.cpu_paths corpora/older-engines/test
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.decoding import greedy_decode_batch
from asr.features import features, pad_batch
from asr.model import AcousticModel
from asr.precision import autocast
from asr.transcriber import Transcriber
from bench.corpora import corpus_split
from training.metrics import cer

Forward = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def reverse_within(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each ``(batch, frames, dim)`` sequence reversed over its own length; padding stays where it is."""
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    order = torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)
    return x.gather(1, order.unsqueeze(-1).expand_as(x))


class PaddedTwin(nn.Module):
    """The trained model on padded batches, without PackedSequence, so that it exports and compiles."""

    def __init__(self, model: AcousticModel):
        super().__init__()
        self.model = model
        self.directions = nn.ModuleList()
        for layer in model.rnns:
            gru = layer.gru
            pair = nn.ModuleList(nn.GRU(gru.input_size, gru.hidden_size, batch_first=True) for _ in range(2))
            for suffix, twin in (("", pair[0]), ("_reverse", pair[1])):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(twin, f"{name}_l0").data.copy_(getattr(gru, f"{name}_l0{suffix}"))
            self.directions.append(pair)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, out_lengths = self.model.front_end(feats, lengths)
        for layer, (forward, backward) in zip(self.model.rnns, self.directions, strict=True):
            x = layer.act(layer.norm(x))
            ahead, _ = forward(x)  # padding comes after the valid frames, so they never see it
            behind, _ = backward(reverse_within(x, out_lengths))
            x = torch.cat([ahead, reverse_within(behind, out_lengths)], dim=-1)
        return self.model.log_probs(x), out_lengths


def onnx_runtime(model: AcousticModel) -> Forward:
    import onnxruntime

    twin = PaddedTwin(model).eval()
    path = Path(tempfile.mkdtemp()) / "model.onnx"
    example = (torch.randn(2, model.config.n_mels, 300), torch.tensor([300, 200]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            twin,
            example,
            path,
            dynamo=False,
            input_names=["features", "lengths"],
            output_names=["log_probs", "out_lengths"],
            dynamic_axes={"features": {0: "batch", 2: "frames"}, "lengths": {0: "batch"}},
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def forward(feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_probs, out_lengths = session.run(None, {"features": feats.numpy(), "lengths": lengths.numpy()})
        return torch.from_numpy(log_probs), torch.from_numpy(out_lengths)

    return forward


def paths(checkpoint: Path) -> dict[str, Forward]:
    def precision(name: str) -> Forward:
        transcriber = Transcriber.from_checkpoint(checkpoint, "cpu", name)

        def forward(feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            with autocast(transcriber.precision, transcriber.device):
                return transcriber.model(feats, lengths)

        return forward

    fp32 = Transcriber.from_checkpoint(checkpoint, "cpu", "fp32").model
    return {
        "fp32 eager": precision("fp32"),
        "bf16 autocast": precision("bf16"),
        "int8 dynamic": precision("int8"),
        "onnxruntime fp32": onnx_runtime(fp32),
        "torch.compile": torch.compile(PaddedTwin(fp32).eval(), dynamic=True),
    }


@torch.inference_mode()
def measure(forward: Forward, clips: list[torch.Tensor], references: list[str], frame_seconds: float) -> dict:
    """CER over every clip (batches of 16 of similar length) and audio seconds per second at batch 16 and 1."""
    order = sorted(range(len(clips)), key=lambda i: clips[i].numel())
    batches = [order[k : k + 16] for k in range(0, len(order), 16)]
    feats = [pad_batch([features(clips[i], 16000) for i in batch]) for batch in batches]
    forward(*feats[0])  # compiles, for the paths that do
    hypotheses, started = {}, time.perf_counter()
    for batch, (padded, lengths) in zip(batches, feats, strict=True):
        log_probs, out_lengths = forward(padded, lengths)
        for i, transcript in zip(batch, greedy_decode_batch(log_probs, out_lengths, frame_seconds), strict=True):
            hypotheses[i] = transcript.text
    batched = time.perf_counter() - started
    singles = order[len(order) // 2 : len(order) // 2 + 20]
    started = time.perf_counter()
    for i in singles:
        forward(*pad_batch([features(clips[i], 16000)]))
    alone = time.perf_counter() - started
    seconds = sum(c.numel() for c in clips) / 16000
    return {
        "cer": round(100 * cer(references, [hypotheses[i] for i in range(len(clips))]), 2),
        "batch16_audio_s_per_s": round(seconds / batched, 1),
        "batch1_audio_s_per_s": round(sum(clips[i].numel() for i in singles) / 16000 / alone, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a split folder of a corpus, e.g. corpora/older-engines/test")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    args = parser.parse_args()
    clips, references = corpus_split(args.folder)
    frame_seconds = Transcriber.from_checkpoint(args.checkpoint, "cpu", "fp32").frame_seconds
    for name, forward in paths(args.checkpoint).items():
        print(json.dumps({"path": name, **measure(forward, clips, references, frame_seconds)}), flush=True)


if __name__ == "__main__":
    main()

"""Training throughput in audio seconds per second, for model presets and precisions, in one run.

Times the real optimisation step of ``training.train`` on batches shaped like the corpus
(utterances of 2-6 s, as many as fit ``max_frames`` padded frames), after warm-up steps.
Prints a JSON line per configuration and ratios against the first one.

    python -m bench.train_throughput --presets reference default --precisions fp32 bf16
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from asr.model import AcousticModel
from asr.precision import AUTOCAST, resolve_device
from asr.text import NUM_CLASSES
from training.train import PRESETS, Optimisation, TrainConfig


def synthetic_batch(max_frames: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    lengths = []
    while True:
        frames = int(torch.randint(200, 600, (1,), generator=generator))
        if (len(lengths) + 1) * max(lengths + [frames]) > max_frames:
            break
        lengths.append(frames)
    lengths_t = torch.tensor(sorted(lengths, reverse=True))
    feats = torch.randn(len(lengths), 128, int(lengths_t.max()), generator=generator) * 3 - 7
    target_lengths = lengths_t // 8
    targets = torch.randint(1, NUM_CLASSES, (int(target_lengths.sum()),), generator=generator)
    return feats, lengths_t, targets, target_lengths


def measure(preset: str, precision: str, device: torch.device, max_frames: int, steps: int, warmup: int) -> dict:
    config = TrainConfig(model=PRESETS[preset], precision=precision, max_frames=max_frames)
    model = AcousticModel(config.model).to(device).train()
    optimisation = Optimisation(model, config, steps + warmup, device)
    generator = torch.Generator().manual_seed(0)
    batches = [synthetic_batch(max_frames, generator) for _ in range(steps + warmup)]
    for batch in batches[:warmup]:
        optimisation.step(*batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for batch in batches[warmup:]:
        optimisation.step(*batch)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    audio = sum(float(b[1].sum()) for b in batches[warmup:]) * config.features.frame_seconds
    return {
        "preset": preset,
        "parameters": model.num_parameters(),
        "precision": precision,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "batch_frames": max_frames,
        "steps": steps,
        "audio_seconds_per_second": round(audio / seconds, 2),
        "seconds_per_step": round(seconds / steps, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["reference", "default"], choices=sorted(PRESETS))
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=sorted(AUTOCAST))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-frames", type=int, default=TrainConfig.max_frames)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    device = resolve_device(args.device)
    results = []
    for preset in args.presets:
        for precision in args.precisions:
            if precision == "fp16" and device.type != "cuda":
                continue
            results.append(measure(preset, precision, device, args.max_frames, args.steps, args.warmup))
            print(json.dumps(results[-1]), flush=True)
    base = results[0]["audio_seconds_per_second"]
    for result in results[1:]:
        print(
            f"{result['preset']}/{result['precision']} vs {results[0]['preset']}/{results[0]['precision']}: "
            f"{result['audio_seconds_per_second'] / base:.2f}x"
        )


if __name__ == "__main__":
    main()

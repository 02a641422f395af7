"""How fast the streaming loader prepares training batches, in audio seconds per second.

Decodes and featurises the batches of one planned epoch (the first ``--batches`` of them)
with 0, 1, 2... worker processes, and prints a JSON line per worker count plus its ratio to
in-process loading. Compare the figures with the training throughput of
``bench/train_throughput.py``: while the loader is faster, training never waits for data.

    python -m bench.data_loading CORPUS/train --workers 0 1 2
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from asr.features import FeatureConfig
from training.data import FeatureDataset, batches, length_buckets, load
from training.train import TrainConfig


def measure(dataset: FeatureDataset, plan: list[list[int]], workers: int) -> dict:
    config = dataset.config
    started = time.perf_counter()
    loader = iter(batches(dataset, plan, workers))
    next(loader)  # the first batch also pays for starting the workers
    ready = time.perf_counter()
    frames = sum(int(lengths.sum()) for _, lengths, _, _ in loader)
    audio = frames * config.frame_seconds
    seconds = time.perf_counter() - ready
    return {
        "workers": workers,
        "batches": len(plan),
        "start_seconds": round(ready - started, 2),
        "audio_seconds_per_second": round(audio / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a folder in the LibriSpeech layout")
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--max-frames", type=int, default=TrainConfig.max_frames)
    args = parser.parse_args()
    dataset = FeatureDataset(load([args.data], FeatureConfig()), FeatureConfig())
    plan = length_buckets([r.frames for r in dataset.recordings], args.max_frames, random.Random(0))[: args.batches]
    results = []
    for workers in args.workers:
        results.append(measure(dataset, plan, workers))
        print(json.dumps(results[-1]), flush=True)
    for result in results[1:]:
        ratio = result["audio_seconds_per_second"] / results[0]["audio_seconds_per_second"]
        print(f"{result['workers']} workers vs {results[0]['workers']}: {ratio:.2f}x")


if __name__ == "__main__":
    main()

"""What the streaming window costs in accuracy and buys in speed (asr/incremental.py).

Each test utterance is fed as a stream would feed it: read after every ``--read-ms`` of audio,
then once more at the end. The final transcript, with frames older than W settled along the
way, is scored against full re-reading (``window=None``, exact). Also on utterances joined four at
a time (about 13 s, near the service's 15 s cut), where the window matters most. Speed: the
mean time of one partial read of the open utterance, late in a 15 s one, batch of 1.

    python -m bench.incremental corpora/older-engines/test --windows 25 50 100 200
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.decoding import greedy_decode
from asr.incremental import Settled, advance
from asr.transcriber import Transcriber
from bench.corpora import corpus_split
from training.metrics import cer


def stream_read(transcriber: Transcriber, waveform: torch.Tensor, window: int | None, read_samples: int) -> str:
    """The final text of ``waveform`` read as a stream: a partial every ``read_samples``, then the end."""
    model, features = transcriber.model, transcriber.info.feature_config
    settled = Settled()
    for end in range(read_samples, waveform.numel(), read_samples):
        _, [settled] = advance(model, features, [waveform[:end]], [settled], window)
    [log_probs], _ = advance(model, features, [waveform], [settled], window, final=True)
    return greedy_decode(log_probs, transcriber.frame_seconds).text


def read_cost(transcriber: Transcriber, waveform: torch.Tensor, window: int | None, read_samples: int) -> float:
    """Mean seconds per partial read over the last 5 s of a stream of ``waveform``."""
    model, features = transcriber.model, transcriber.info.feature_config
    settled, times = Settled(), []
    for end in range(read_samples, waveform.numel(), read_samples):
        started = time.perf_counter()
        _, [settled] = advance(model, features, [waveform[:end]], [settled], window)
        if end > waveform.numel() - 5 * 16000:
            times.append(time.perf_counter() - started)
    return sum(times) / len(times)


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a split folder of a corpus (e.g. corpora/older-engines/test)")
    parser.add_argument("--windows", type=int, nargs="+", default=[25, 50, 100, 200], help="W, in output frames")
    parser.add_argument("--read-ms", type=float, default=400.0)
    parser.add_argument("--limit", type=int, default=400, help="utterances to use")
    args = parser.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    transcriber = Transcriber.from_checkpoint(DEFAULT_CHECKPOINT, "cpu", "fp32")
    rate = transcriber.info.feature_config.sample_rate
    read_samples = round(args.read_ms / 1000 * rate)
    clips, texts = corpus_split(args.folder, args.limit)
    joined = [torch.cat(clips[i : i + 4]) for i in range(0, len(clips) - 3, 4)]
    joined_texts = [" ".join(texts[i : i + 4]) for i in range(0, len(texts) - 3, 4)]
    print(json.dumps({"utterances": len(clips), "mean_s": round(sum(c.numel() for c in clips) / len(clips) / rate, 2)}))

    long = torch.cat(clips)[: 15 * rate]
    for window in [None, *args.windows]:
        row = {"window_frames": window, "window_s": window and window * transcriber.frame_seconds}
        for name, waves, refs in (("single", clips, texts), ("joined", joined, joined_texts)):
            hypotheses = [stream_read(transcriber, w, window, read_samples) for w in tqdm(waves, leave=False)]
            row[f"cer_{name}"] = round(100 * cer(refs, hypotheses), 2)
        row["read_ms_at_15s"] = round(1000 * read_cost(transcriber, long, window, read_samples), 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

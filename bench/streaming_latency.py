"""Streaming latency with 1, 8 and 32 concurrent Vosk-protocol streams, against the real service.

Each stream sends spoken sentences separated by pauses, in real time: one 400 ms chunk every
400 ms, the service's partial cadence, so every chunk inside an utterance is answered by a
partial that includes it. Two latencies per concurrency level:

- partial: from sending a chunk to receiving the partial that includes it;
- final: from the end of an utterance's speech (when its last sample was spoken, in stream time)
  to receiving its result. It includes the pause that ends the utterance (``endpoint_silence_ms``).

It also samples ``asr_audio_in_flight_seconds``, the autoscaler's metric, at each level.

Prints a JSON line per level and writes the distributions as a PNG.

    python -m bench.streaming_latency --streams 1 8 32 --png docs/streaming-latency.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import httpx
import torch
from websockets.asyncio.client import connect

from bench.serving import SENTENCES, gauge, serve, speech

RATE = 16000
CHUNK_SECONDS = 0.4


def stream_audio(index: int, pause: float) -> tuple[bytes, list[float]]:
    """Three sentences with pauses, as 16-bit PCM, and the stream time at which each one's speech ends."""
    parts, ends, at = [torch.zeros(RATE // 2)], [], 0.5
    for k in range(3):
        clip = speech(SENTENCES[(index + 3 * k) % len(SENTENCES)], rate=0.9 + 0.05 * (index % 5))
        voiced = torch.nonzero(clip.abs() > 0.01).flatten()
        ends.append(at + (int(voiced[-1]) + 1) / RATE)
        parts += [clip, torch.zeros(round(RATE * pause))]
        at += (clip.numel() + round(RATE * pause)) / RATE
    return (torch.cat(parts) * 32767).round().to(torch.int16).numpy().tobytes(), ends


async def run_stream(url: str, audio: bytes, ends: list[float]) -> tuple[list[float], list[float]]:
    chunk = round(CHUNK_SECONDS * RATE) * 2
    partials, finals, results = [], [], 0
    async with connect(url) as ws:
        await ws.send(json.dumps({"config": {"sample_rate": RATE}}))
        started = time.perf_counter()
        for n, offset in enumerate(range(0, len(audio), chunk)):
            # A chunk leaves once its last sample has been spoken, as from a microphone.
            await asyncio.sleep(max(0.0, started + (n + 1) * CHUNK_SECONDS - time.perf_counter()))
            sent = time.perf_counter()
            await ws.send(audio[offset : offset + chunk])
            reply = json.loads(await ws.recv())
            received = time.perf_counter()
            if "result" in reply and results < len(ends):
                finals.append(received - (started + ends[results]))
                results += 1
            elif reply.get("partial"):
                partials.append(received - sent)
        await ws.send('{"eof" : 1}')
        await ws.recv()
    return partials, finals


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def in_flight(url: str, samples: list[float]) -> None:
    """Sample the service's asr_audio_in_flight_seconds (what the autoscaler reads) every 200 ms."""
    async with httpx.AsyncClient() as client:
        while True:
            text = (await client.get(f"{url}/metrics")).text
            samples.append(gauge(text, "asr_audio_in_flight_seconds"))
            await asyncio.sleep(0.2)


async def level(url: str, streams: int, pause: float) -> dict:
    audio = [stream_audio(i, pause) for i in range(streams)]
    samples: list[float] = []
    sampler = asyncio.create_task(in_flight(url, samples))
    ws_url = url.replace("http", "ws") + "/v1/stream"
    outcomes = await asyncio.gather(*(run_stream(ws_url, a, e) for a, e in audio))
    sampler.cancel()
    partials = [x for p, _ in outcomes for x in p]
    finals = [x for _, f in outcomes for x in f]
    return {
        "streams": streams,
        "partials": len(partials),
        "partial_ms_p50": round(1000 * percentile(partials, 50)),
        "partial_ms_p95": round(1000 * percentile(partials, 95)),
        "partial_ms_max": round(1000 * max(partials)),
        "finals": len(finals),
        "final_ms_p50": round(1000 * percentile(finals, 50)),
        "final_ms_p95": round(1000 * percentile(finals, 95)),
        "final_ms_max": round(1000 * max(finals)),
        "audio_in_flight_s_mean": round(statistics.mean(samples), 2),
        "audio_in_flight_s_p95": round(percentile(samples, 95), 2),
        "_partials": partials,
        "_finals": finals,
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    titles = ("chunk to its partial", "end of speech to result")
    for axis, key, title in zip(axes, ("_partials", "_finals"), titles, strict=True):
        axis.boxplot([[1000 * x for x in row[key]] for row in rows], tick_labels=[str(r["streams"]) for r in rows])
        axis.set(title=title, xlabel="concurrent streams", ylabel="ms")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--pause", type=float, default=1.0, help="seconds of silence after each sentence")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--png", type=Path, help="write the latency distributions here")
    args = parser.parse_args()
    rows = []
    with serve(device=args.device, log_level="warning") as (url, _):
        for streams in args.streams:
            row = asyncio.run(level(url, streams, args.pause))
            print(json.dumps({k: v for k, v in row.items() if not k.startswith("_")}), flush=True)
            rows.append(row)
    if args.png:
        plot(rows, args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()

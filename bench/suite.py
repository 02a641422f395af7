"""The performance suite: every serving figure in one run, side by side, against the targets.

One command starts the real service on loopback (default settings) and measures, in order:

- start-up: seconds to ready and idle resident memory;
- files: concurrent clients posting TTS-made WAV clips of 2 to 20 s (throughput, latency and
  real-time factor percentiles, batch sizes from the server's metrics, its CPU use and memory);
- streams: real-time WebSocket streams (chunk-to-partial and end-of-speech-to-final latency,
  the backlog);
- the same server with batching off (``ASR_MAX_BATCH_SIZE=1``) at 32 file clients;
- PocketSphinx decoding the same clips on the same cores;
- a roofline: the model's FLOPs per audio second (counted by torch.utils.flop_counter) times the
  32-client throughput, against a GEMM peak measured here.

It writes the figures as JSON and a PNG, and prints each target with whether it was met.

    python -m bench.suite --out bench/results   # about 8 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import torch
from torch.utils.flop_counter import FlopCounterMode

from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.transcriber import Transcriber
from bench import load, peer
from tests.support.servers import resident_mb, samples, serve
from tests.support.speech import SENTENCES, encode, speech

RATE = 16000


def clips(count: int) -> list[tuple[float, torch.Tensor]]:
    """``count`` clips of 2 to 20 s: sentences joined by short pauses, at a few speaking rates."""
    made = []
    for n in range(count):
        target = 2 + 18 * n / max(1, count - 1)
        parts, seconds, k = [], 0.0, n
        while seconds < target - 0.5:
            clip = speech(SENTENCES[k % len(SENTENCES)], rate=0.9 + 0.1 * (k % 3))
            parts += [clip, torch.zeros(RATE // 4)]
            seconds += (clip.numel() + RATE // 4) / RATE
            k += 1
        audio = torch.cat(parts)[: round(target * RATE)]
        made.append((audio.numel() / RATE, audio))
    return made


def gemm_peak(size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of the best of ``repeats`` fp32 square matrix products on this process's threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * size**3 / best


def _timed(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def model_flops_per_audio_second(checkpoint: Path) -> float:
    transcriber = Transcriber.from_checkpoint(checkpoint, "cpu", "fp32")  # the counter cannot see int8 kernels
    seconds = 10
    features = torch.randn(2, transcriber.model.config.n_mels, seconds * 100 + 1)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        transcriber.model(features)
    return counter.get_total_flops() / (2 * seconds)


class Sampler:
    """The server's resident memory and CPU time, sampled every 100 ms in a thread while a level runs."""

    def __init__(self, pid: int):
        self.pid, self.peak_mb = pid, 0.0
        self.gpu: list[float] | None = [] if shutil.which("nvidia-smi") else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._cpu, self._wall = _cpu_seconds(self.pid), time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_percent = 100 * (_cpu_seconds(self.pid) - self._cpu) / (time.perf_counter() - self._wall)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak_mb = max(self.peak_mb, resident_mb(self.pid))
            if self.gpu is not None:
                self.gpu.append(_gpu_busy_percent())

    @property
    def report(self) -> dict:
        row = {"server_cpu_percent": round(self.cpu_percent), "server_peak_rss_mb": round(self.peak_mb)}
        if self.gpu:
            row["gpu_busy_percent"] = round(sum(self.gpu) / len(self.gpu))
        return row


def _gpu_busy_percent() -> float:
    """nvidia-smi's utilisation of the first GPU: the share of time a kernel was running."""
    query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "--id=0"]
    return float(subprocess.run(query, capture_output=True, text=True, check=True).stdout)


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def batch_sizes(url: str) -> dict[str, float]:
    """The cumulative ``asr_batch_size`` histogram: forward passes with at most N clips, by N."""
    found = samples(httpx.get(f"{url}/metrics").text)
    return {dict(labels)["le"]: n for (name, labels), n in found.items() if name == "asr_batch_size_bucket"}


def batch_distribution(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    """Forward passes per batch-size bucket between two histogram readings (``"5-8"``: 5 to 8 clips)."""
    counts, below, low = {}, 0.0, 1
    for le, cumulative in after.items():
        cumulative -= before.get(le, 0.0)
        high = "" if le == "+Inf" else str(int(float(le)))
        label = high if high == str(low) else f"{low}-{high}"
        if cumulative > below:
            counts[label] = int(cumulative - below)
        below, low = cumulative, int(high or low) + 1
    return counts


def file_levels(url: str, pid: int, levels: list[int], data: list[tuple[float, bytes]]) -> list[dict]:
    rows = []
    for clients in levels:
        before = batch_sizes(url)
        with Sampler(pid) as sampler:
            row = asyncio.run(load.files(url, clients, data, requests=max(12, 3 * clients)))
        row |= sampler.report | {"batch_sizes": batch_distribution(before, batch_sizes(url))}
        print(json.dumps({"files": {k: v for k, v in row.items() if not k.startswith("_")}}), flush=True)
        rows.append(row)
    return rows


def stream_levels(url: str, pid: int, levels: list[int], chunk_seconds: float) -> list[dict]:
    rows = []
    for count in levels:
        with Sampler(pid) as sampler:
            row = asyncio.run(load.streams(url, count, pause=1.0, chunk_seconds=chunk_seconds))
        row |= sampler.report
        print(json.dumps({"streams": {k: v for k, v in row.items() if not k.startswith("_")}}), flush=True)
        rows.append(row)
    return rows


def targets(result: dict) -> list[dict]:
    files = {row["clients"]: row for row in result["files"]}
    streams = {row["streams"]: row for row in result["streams"]}
    at32 = files[32]["audio_s_per_s"]
    checks = [
        ("file throughput at 32 clients, audio s/s", at32, ">=", 100),
        ("batching on / off at 32 clients", at32 / result["batching_off"]["audio_s_per_s"], ">=", 2),
        ("ours / PocketSphinx throughput", at32 / result["pocketsphinx"]["audio_s_per_s"], ">=", 10),
        ("32 streams: partial p95, ms", streams[32]["partial_ms_p95"], "<=", 500),
        ("32 streams: final p95, ms", streams[32]["final_ms_p95"], "<=", 700),
        ("share of GEMM peak at 32 clients", result["roofline"]["share_of_gemm_peak"], ">=", 0.4),
        ("seconds to ready", result["startup"]["ready_s"], "<=", 10),
        ("idle resident memory, MB", result["startup"]["idle_rss_mb"], "<=", 1024),
        ("resident memory under 32 clients, MB", files[32]["server_peak_rss_mb"], "<=", 2048),
    ]
    met = {">=": operator.ge, "<=": operator.le}
    return [
        {"target": name, "measured": round(value, 3), "goal": f"{op} {goal}", "met": met[op](value, goal)}
        for name, value, op, goal in checks
    ]


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, ((a, b), (c, d)) = plt.subplots(2, 2, figsize=(12, 8))
    files, streams = result["files"], result["streams"]
    clients = [r["clients"] for r in files]
    a.plot(clients, [r["audio_s_per_s"] for r in files], "o-", label="batching on")
    a.axhline(result["batching_off"]["audio_s_per_s"], color="C1", ls="--", label="batching off (32 clients)")
    a.axhline(result["pocketsphinx"]["audio_s_per_s"], color="C2", ls=":", label="PocketSphinx")
    a.set(title="file throughput", xlabel="concurrent clients", ylabel="audio seconds per second", xscale="log")
    a.legend()
    b.boxplot([[1000 * x for x in r["_latencies"]] for r in files], tick_labels=[str(c) for c in clients])
    b.set(title="file request latency (2-20 s clips)", xlabel="concurrent clients", ylabel="ms", yscale="log")
    labels = [str(r["streams"]) for r in streams]
    positions = range(len(streams))
    c.boxplot([[1000 * x for x in r["_partials"]] for r in streams], positions=[p - 0.2 for p in positions], widths=0.3)
    c.boxplot([[1000 * x for x in r["_finals"]] for r in streams], positions=[p + 0.2 for p in positions], widths=0.3)
    c.set_xticks(list(positions), labels)
    c.axhline(500, color="C0", ls=":", lw=1)
    c.axhline(700, color="C1", ls=":", lw=1)
    c.set(title="streams: chunk → partial (left), end of speech → final (right)", xlabel="streams", ylabel="ms")
    sizes = files[clients.index(32)]["batch_sizes"] if 32 in clients else {}
    d.bar(list(sizes), list(sizes.values()))
    d.set(title="clips per forward pass, 32 file clients", xlabel="batch size", ylabel="forward passes")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--files", type=int, nargs="+", default=[1, 8, 32, 64], help="concurrent file clients")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 16, 32, 64], help="concurrent streams")
    parser.add_argument("--clips", type=int, default=24, help="distinct clips of 2 to 20 s")
    parser.add_argument("--chunk-ms", type=float, default=400.0, help="stream chunk (the partial interval's default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", help="ASR_ settings: precision=fp32")
    args = parser.parse_args()
    if 32 not in args.files or 32 not in args.streams:
        parser.error("the targets are judged at 32 clients and 32 streams: keep 32 in --files and --streams")
    args.out.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))

    audio = clips(args.clips)
    data = [(seconds, encode(waveform[None], RATE, "wav")) for seconds, waveform in audio]
    print(json.dumps({"clips": len(data), "audio_s": round(sum(s for s, _ in data), 1), "cores": cores}), flush=True)
    peak = gemm_peak()
    flops = model_flops_per_audio_second(DEFAULT_CHECKPOINT)
    settings = {"device": args.device, "log_level": "warning", "stream_partial_interval_ms": args.chunk_ms}
    settings |= dict(setting.split("=", 1) for setting in args.set)
    result: dict = {"cores": cores, "settings": settings}
    began = time.perf_counter()
    with serve(args.out / "server.log", **settings) as (url, process):
        ready = time.perf_counter() - began
        result["startup"] = {"ready_s": round(ready, 2), "idle_rss_mb": round(resident_mb(process.pid))}
        print(json.dumps({"startup": result["startup"]}), flush=True)
        result["files"] = file_levels(url, process.pid, args.files, data)
        result["streams"] = stream_levels(url, process.pid, args.streams, args.chunk_ms / 1000)
        result["server_peak_rss_mb"] = round(resident_mb(process.pid, "VmHWM"))
    with serve(args.out / "server-unbatched.log", **settings, max_batch_size=1) as (url, process):
        [result["batching_off"]] = file_levels(url, process.pid, [32], data)

    sphinx = peer.pocketsphinx_throughput([waveform for _, waveform in audio], processes=cores)
    result["pocketsphinx"] = {k: round(v, 2) for k, v in sphinx.items() if k != "transcripts"}
    print(json.dumps({"pocketsphinx": result["pocketsphinx"]}), flush=True)

    at32 = next(r for r in result["files"] if r["clients"] == 32)["audio_s_per_s"]
    result["roofline"] = {
        "model_gflop_per_audio_s": round(flops / 1e9, 3),
        "achieved_gflop_per_s": round(flops * at32 / 1e9, 1),
        "gemm_peak_gflop_per_s": round(peak / 1e9, 1),
        "share_of_gemm_peak": round(flops * at32 / peak, 3),
    }
    print(json.dumps({"roofline": result["roofline"]}), flush=True)
    result["targets"] = targets(result)
    for row in result["targets"]:
        print(f"{'met ' if row['met'] else 'MISS'}  {row['target']}: {row['measured']} (target {row['goal']})")
    plot(result, args.out / "suite.png")
    for row in [*result["files"], *result["streams"], result["batching_off"]]:
        for key in [k for k in row if k.startswith("_")]:
            del row[key]
    (args.out / "suite.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out / 'suite.json'} and {args.out / 'suite.png'}")


if __name__ == "__main__":
    main()

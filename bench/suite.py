"""The performance suite: every serving figure in one run, side by side, against the targets.

One command starts the real service on loopback (default settings) and measures, in order:

- start-up: seconds to ready and idle resident memory;
- files: concurrent clients posting TTS-made WAV clips of 2 to 20 s (throughput, latency and
  real-time factor percentiles, batch sizes from the server's metrics, its CPU use and memory);
- streams: real-time WebSocket streams (chunk-to-partial and end-of-speech-to-final latency,
  the backlog);
- the same server with batching off (``ASR_MAX_BATCH_SIZE=1``) at 32 file clients;
- the peers decoding the same clips on the same cores: PocketSphinx, and Whisper tiny.en;
- a roofline: the model's FLOPs per audio second (counted by torch.utils.flop_counter) times the
  32-client throughput, against a GEMM peak measured here.

Every recogniser's WER on the clips sits beside its speed. It writes the figures as JSON and a PNG,
prints each target with whether it was met, and with ``--docs`` rewrites the results in
docs/performance.md and the README's headline, so that those figures always describe the defaults they
were measured with.

    python -m bench.suite --out bench/results --docs docs/performance.md README.md   # about 5 minutes on 2 cores
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
from dataclasses import asdict
from pathlib import Path

import httpx
import torch
from torch.utils.flop_counter import FlopCounterMode

from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.language_model import DEFAULT_LM, LanguageModel
from asr.text import normalise
from asr.transcriber import Transcriber
from bench import load, peer
from bench.docs import markers, replace_blocks
from service.settings import Settings
from tests.support.servers import resident_mb, samples, serve
from tests.support.speech import SENTENCES, encode, speech
from training.metrics import wer

RATE = 16000
DOCS_BEGIN, DOCS_END = markers("bench.suite")
HEADLINE_BEGIN, HEADLINE_END = markers("bench.suite headline")


def clips(count: int) -> list[tuple[float, torch.Tensor, str]]:
    """``count`` clips of about 2 to 20 s, and what they say: whole sentences joined by short pauses, at a few
    speaking rates."""
    made = []
    for n in range(count):
        target = 2 + 18 * n / max(1, count - 1)
        parts, said, seconds, k = [], [], 0.0, n
        while seconds < target - 0.5:
            clip = speech(SENTENCES[k % len(SENTENCES)], rate=0.9 + 0.1 * (k % 3))
            parts += [clip, torch.zeros(RATE // 4)]
            said.append(SENTENCES[k % len(SENTENCES)])
            seconds += (clip.numel() + RATE // 4) / RATE
            k += 1
        audio = torch.cat(parts)
        made.append((audio.numel() / RATE, audio, " ".join(said)))
    return made


def defaults() -> dict:
    """The defaults that the suite's figures depend on: the docs show them beside the figures, and a test
    checks they are still today's."""
    settings, lm = Settings(), LanguageModel.load(DEFAULT_LM).defaults
    chosen = (
        "precision",
        "inference_workers",
        "torch_threads",
        "decode_processes",
        "stream_vad",
        "stream_partial_beam_size",
        "stream_endpoint_silence_ms",
        "max_batch_size",
        "max_batch_seconds",
    )
    return {name: getattr(settings, name) for name in chosen} | {
        name: value for name, value in asdict(lm).items() if name in ("beam_size", "beam_threshold", "blank_skip")
    }


def cpu_name(cpuinfo: str) -> str:
    """The CPU's model and its widest matrix instructions, from ``/proc/cpuinfo``: the same defaults run at
    different speeds on an AMD EPYC with AVX-512 and on a Xeon with AMX."""
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in cpuinfo.splitlines())}
    name, flags = " ".join(fields.get("model name", "unknown CPU").split()), set(fields.get("flags", "").split())
    instructions = (("amx_int8", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
    widest = next((label for flag, label in instructions if flag in flags), "")
    return f"{name} with {widest}" if widest else name


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


def partial_reads(url: str) -> dict[str, float]:
    """Partial reads so far by outcome: read, or skipped while the model was behind."""
    found = samples(httpx.get(f"{url}/metrics").text)
    return {dict(labels)["outcome"]: n for (name, labels), n in found.items() if name == "asr_partial_reads_total"}


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
        before = partial_reads(url)
        with Sampler(pid) as sampler:
            row = asyncio.run(load.streams(url, count, pause=1.0, chunk_seconds=chunk_seconds))
        row |= sampler.report
        done = {k: v - before.get(k, 0.0) for k, v in partial_reads(url).items()}
        row["partial_reads_skipped_percent"] = round(100 * done.get("skipped", 0) / max(1, sum(done.values())), 1)
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
        ("32 streams: final p95, ms", streams[32]["final_ms_p95"], "<=", 1000),
        ("64 streams: lag behind real time, s", streams.get(64, {}).get("lag_s_max", float("nan")), "<=", 1),
        ("share of GEMM peak at 32 clients", result["roofline"]["share_of_gemm_peak"], ">=", 0.3),
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
    a.axhline(result["whisper"]["audio_s_per_s"], color="C3", ls="-.", label="Whisper tiny.en")
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
    c.axhline(1000, color="C1", ls=":", lw=1)
    c.set(title="streams: chunk → partial (left), end of speech → final (right)", xlabel="streams", ylabel="ms")
    sizes = files[clients.index(32)]["batch_sizes"] if 32 in clients else {}
    d.bar(list(sizes), list(sizes.values()))
    d.set(title="clips per forward pass, 32 file clients", xlabel="batch size", ylabel="forward passes")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _ms(value: float) -> str:
    return f"{value:,.0f}"


def docs_block(result: dict) -> str:
    """The suite's results as the Markdown that docs/performance.md shows between its markers."""
    files, streams = result["files"], result["streams"]
    at32 = next(r for r in files if r["clients"] == 32)
    lines = [
        DOCS_BEGIN,
        f"On {result['cores']} cores of an {result['cpu']}.",
        f"Measured with these defaults: {json.dumps(result['defaults'])}.",
        "",
        "Files, `POST /v1/transcribe`:",
        "",
        "| concurrent clients | " + " | ".join(str(r["clients"]) for r in files) + " |",
        "| --- |" + " --- |" * len(files),
        "| throughput, audio s/s | " + " | ".join(f"{r['audio_s_per_s']}" for r in files) + " |",
        "| latency p50 / p95 / p99, ms | "
        + " | ".join(" / ".join(_ms(r[f"latency_ms_p{q}"]) for q in (50, 95, 99)) for r in files)
        + " |",
        "| server CPU (100% = one core) | " + " | ".join(f"{r['server_cpu_percent']}%" for r in files) + " |",
        "| server resident memory, peak | " + " | ".join(f"{_ms(r['server_peak_rss_mb'])} MB" for r in files) + " |",
        "",
        "Streams, `WS /v1/stream`, real time:",
        "",
        "| concurrent streams | " + " | ".join(str(r["streams"]) for r in streams) + " |",
        "| --- |" + " --- |" * len(streams),
        "| chunk → its partial, p50 / p95 / p99, ms | "
        + " | ".join(" / ".join(_ms(r[f"partial_ms_p{q}"]) for q in (50, 95, 99)) for r in streams)
        + " |",
        "| end of speech → final, p50 / p95 / p99, ms | "
        + " | ".join(" / ".join(_ms(r[f"final_ms_p{q}"]) for q in (50, 95, 99)) for r in streams)
        + " |",
        "| partial reads skipped, the model behind | "
        + " | ".join(f"{r['partial_reads_skipped_percent']}%" for r in streams)
        + " |",
        "| lag behind real time at the end, s | " + " | ".join(f"{r['lag_s_max']}" for r in streams) + " |",
        "| audio in flight, mean / max, s | "
        + " | ".join(f"{r['audio_in_flight_s_mean']} / {r['audio_in_flight_s_max']}" for r in streams)
        + " |",
        "| WER of the finals | " + " | ".join(f"{100 * r['wer']:.1f}%" for r in streams) + " |",
        "",
        "Side by side, same clips, same run:",
        "",
        "| | audio s/s | ours / it | WER |",
        "| --- | --- | --- | --- |",
        f"| ours, 32 file clients | {at32['audio_s_per_s']} | | {100 * at32['wer']:.1f}% |",
    ]
    for name, row in [
        ("ours, batching off (`ASR_MAX_BATCH_SIZE=1`), 32 clients", result["batching_off"]),
        (f"PocketSphinx 5.1.1, {result['pocketsphinx']['processes']} processes", result["pocketsphinx"]),
        (f"Whisper tiny.en (faster-whisper, int8, {result['whisper']['threads']} threads)", result["whisper"]),
    ]:
        ratio = at32["audio_s_per_s"] / row["audio_s_per_s"]
        lines.append(f"| {name} | {row['audio_s_per_s']} | **{ratio:.2f}x** | {100 * row['wer']:.1f}% |")
    roof, start = result["roofline"], result["startup"]
    lines += [
        "",
        f"Roofline: {roof['model_gflop_per_audio_s']} GFLOP per audio second at 32 clients is "
        f"{roof['achieved_gflop_per_s']} GFLOP/s against a {roof['gemm_peak_gflop_per_s']} GFLOP/s fp32 GEMM: "
        f"**{100 * roof['share_of_gemm_peak']:.1f}% of peak**. Start-up: ready in {start['ready_s']} s, "
        f"{start['idle_rss_mb']} MB resident idle.",
        "",
        "| target | measured | goal | |",
        "| --- | --- | --- | --- |",
        *(
            f"| {t['target']} | {t['measured']} | {t['goal']} | {'met' if t['met'] else '**missed**'} |"
            for t in result["targets"]
        ),
        DOCS_END,
    ]
    return "\n".join(lines)


def headline(result: dict) -> str:
    """The run in one paragraph, for the README."""
    at32 = next(r for r in result["files"] if r["clients"] == 32)
    streams = next(r for r in result["streams"] if r["streams"] == 32)
    ratio = {name: at32["audio_s_per_s"] / result[name]["audio_s_per_s"] for name in ("pocketsphinx", "whisper")}
    return (
        f"{HEADLINE_BEGIN}\n32 concurrent file clients get {at32['audio_s_per_s']} audio s/s "
        f"({at32['audio_s_per_s'] / result['batching_off']['audio_s_per_s']:.2f}x the same server with batching "
        f"off, {ratio['pocketsphinx']:.1f}x PocketSphinx and {ratio['whisper']:.1f}x Whisper tiny.en on the same "
        f"clips, at a WER of {100 * at32['wer']:.1f}% where Whisper's is {100 * result['whisper']['wer']:.1f}%); "
        f"32 real-time streams get partials in {_ms(streams['partial_ms_p95'])} ms and finals "
        f"{_ms(streams['final_ms_p95'])} ms after the end of speech at p95; ready in "
        f"{result['startup']['ready_s']} s, {result['startup']['idle_rss_mb']} MB idle.\n{HEADLINE_END}"
    )


def write_docs(path: Path, result: dict) -> None:
    """Replace the suite's blocks in ``path``: the full results, or the headline, between their markers."""
    blocks = [(DOCS_BEGIN, DOCS_END, docs_block(result)), (HEADLINE_BEGIN, HEADLINE_END, headline(result))]
    replace_blocks(path, blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--files", type=int, nargs="+", default=[1, 8, 32, 64], help="concurrent file clients")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 16, 32, 64], help="concurrent streams")
    parser.add_argument("--clips", type=int, default=24, help="distinct clips of 2 to 20 s")
    parser.add_argument("--chunk-ms", type=float, default=400.0, help="stream chunk (the partial interval's default)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", help="ASR_ settings: precision=fp32")
    parser.add_argument("--docs", type=Path, nargs="+", default=[], help="rewrite the results in these Markdown files")
    args = parser.parse_args()
    if args.docs and args.set:
        parser.error("--docs shows the defaults: run it without --set")
    if 32 not in args.files or 32 not in args.streams:
        parser.error("the targets are judged at 32 clients and 32 streams: keep 32 in --files and --streams")
    args.out.mkdir(parents=True, exist_ok=True)
    cores = len(os.sched_getaffinity(0))

    audio = clips(args.clips)
    data = [(seconds, encode(waveform[None], RATE, "wav")) for seconds, waveform, _ in audio]
    references = [text for _, _, text in audio]
    print(json.dumps({"clips": len(data), "audio_s": round(sum(s for s, _ in data), 1), "cores": cores}), flush=True)
    peak = gemm_peak()
    flops = model_flops_per_audio_second(DEFAULT_CHECKPOINT)
    settings = {"device": args.device, "log_level": "warning", "stream_partial_interval_ms": args.chunk_ms}
    settings |= dict(setting.split("=", 1) for setting in args.set)
    result: dict = {"cores": cores, "cpu": cpu_name(Path("/proc/cpuinfo").read_text()), "settings": settings}
    result["defaults"] = defaults()
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

    for row in [*result["files"], result["batching_off"]]:
        texts = [normalise(t) for t in row["_texts"].values()]
        row["wer"] = round(wer([references[i] for i in row["_texts"]], texts), 4)
    for row in result["streams"]:
        said = [" ".join(load.stream_text(i)) for i in range(row["streams"])]
        row["wer"] = round(wer(said, [normalise(t) for t in row["_texts"]]), 4)
    waveforms = [waveform for _, waveform, _ in audio]
    sphinx = peer.pocketsphinx_throughput(waveforms, processes=cores)
    whisper = peer.whisper_throughput(waveforms, threads=cores)
    for name, found in (("pocketsphinx", sphinx), ("whisper", whisper)):
        result[name] = {k: round(v, 2) for k, v in found.items() if k != "transcripts"}
        result[name]["wer"] = round(wer(references, [normalise(t) for t in found["transcripts"]]), 4)
        print(json.dumps({name: result[name]}), flush=True)
    result["whisper"]["threads"] = cores

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
    for path in args.docs:
        write_docs(path, result)
        print(f"rewrote the results in {path}")


if __name__ == "__main__":
    main()

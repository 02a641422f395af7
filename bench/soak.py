"""A soak test: a mixed load against the real service for a while, and what became of every request.

Four kinds of client run side by side until the time is up:

- files: spoken clips in five formats, to the native and the OpenAI endpoints; 200 with text expected;
- streams: Vosk sessions at twice real time, one reply per chunk and a last result expected;
- bad: garbage, empty bodies, missing fields, bad WebSocket messages; each
  must get its own 4xx or close code;
- quitters: clients that hang up mid-upload or vanish mid-stream.

A 503 ``overloaded`` or a 1013 counts as load shed correctly (file clients then wait the
``Retry-After``). Anything else unexpected is a failure. At the end, no stream may still be open and
no audio still queued. Prints one JSON report; ``--png`` draws the server's memory over the run;
``--max-queue`` and ``--max-streams`` lower the server's limits so that it has to shed load.

    python -m bench.soak --seconds 600 --png docs/soak-memory.png
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import torch
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.long_file import long_flac
from tests.support.servers import gauge, resident_mb, serve
from tests.support.speech import SENTENCES, encode, speech

FORMATS = ("wav", "flac", "mp3", "opus", "m4a")
TRY_AGAIN_LATER = 1013


@dataclass
class Tally:
    sent: int = 0
    succeeded: int = 0
    rejected: Counter = field(default_factory=Counter)
    """Refusals that were the right answer, by status or close code."""
    failed: list[str] = field(default_factory=list)

    def report(self) -> dict:
        return {
            "sent": self.sent,
            "succeeded": self.succeeded,
            "rejected_rightly": dict(self.rejected),
            "failed": len(self.failed),
            "failures": self.failed[:10],
        }


def shed(response: httpx.Response) -> bool:
    """Refused at the door because the queue is full: the right answer under overload."""
    return response.status_code == 503 and response.json()["error"]["code"] == "overloaded"


def refused(closed: ConnectionClosed) -> bool:
    return closed.rcvd is not None and closed.rcvd.code == TRY_AGAIN_LATER


def clips() -> list[tuple[str, bytes]]:
    """Each sentence spoken, in each format, at a rate that suits it."""
    rates = {"wav": 16000, "flac": 22050, "mp3": 44100, "opus": 48000, "m4a": 44100}
    made = []
    for n, text in enumerate(SENTENCES):
        kind = FORMATS[n % len(FORMATS)]
        made.append((kind, encode(speech(text, sample_rate=rates[kind])[None], rates[kind], kind)))
    return made


async def files(url: str, until: float, tally: Tally, audio: list[tuple[str, bytes]]) -> None:
    async with httpx.AsyncClient(timeout=120) as client:
        while time.monotonic() < until:
            kind, data = random.choice(audio)
            tally.sent += 1
            if random.random() < 0.5:
                response = await client.post(f"{url}/v1/transcribe", files={"file": (f"a.{kind}", data)})
            else:
                response = await client.post(
                    f"{url}/v1/audio/transcriptions", files={"file": (f"a.{kind}", data)}, data={"model": "whisper-1"}
                )
            if response.status_code == 200 and response.json()["text"]:
                tally.succeeded += 1
            elif shed(response):
                tally.rejected[503] += 1
                await asyncio.sleep(float(response.headers["retry-after"]))
            else:
                tally.failed.append(f"file {kind}: {response.status_code} {response.text[:120]}")


def pcm(text: str) -> bytes:
    audio = torch.cat([torch.zeros(8000), speech(text), torch.zeros(16000)])
    return (audio * 32767).round().to(torch.int16).numpy().tobytes()


async def streams(ws_url: str, until: float, tally: Tally) -> None:
    chunk = 12800  # 400 ms, sent every 200 ms: twice real time
    while time.monotonic() < until:
        audio = pcm(random.choice(SENTENCES))
        tally.sent += 1
        try:
            async with connect(ws_url) as ws:
                replies = 0
                for offset in range(0, len(audio), chunk):
                    await ws.send(audio[offset : offset + chunk])
                    reply = json.loads(await ws.recv())
                    replies += "partial" in reply or "text" in reply
                    await asyncio.sleep(0.2)
                await ws.send('{"eof" : 1}')
                last = json.loads(await ws.recv())
            if replies == -(-len(audio) // chunk) and "text" in last:
                tally.succeeded += 1
            else:
                tally.failed.append(f"stream: {replies} replies, last {last}")
        except ConnectionClosed as closed:
            if refused(closed):
                tally.rejected[TRY_AGAIN_LATER] += 1
            else:
                tally.failed.append(f"stream closed: {closed}")


BAD_HTTP = [
    ("garbage", lambda: {"files": {"file": ("x.mp3", random.randbytes(3000))}}, 400),
    ("empty", lambda: {"content": b""}, 400),
    ("no file field", lambda: {"files": {"audio": ("a.wav", b"RIFF")}}, 422),
]
BAD_WS = [
    ("not json", "{nope", 1007),
    ("bad rate", '{"config": {"sample_rate": 1}}', 1007),
    ("bad command", "{}", 1003),
]


async def bad(url: str, ws_url: str, until: float, tally: Tally) -> None:
    async with httpx.AsyncClient(timeout=60) as client:
        while time.monotonic() < until:
            tally.sent += 1
            if random.random() < 0.6:
                name, request, status = random.choice(BAD_HTTP)
                response = await client.post(f"{url}/v1/transcribe", **request())
                if response.status_code == status or shed(response):
                    tally.rejected[response.status_code] += 1
                else:
                    tally.failed.append(f"bad {name}: {response.status_code} {response.text[:120]}")
            else:
                name, message, code = random.choice(BAD_WS)
                async with connect(ws_url) as ws:
                    try:
                        await ws.send(message)
                        await ws.recv()
                        await ws.recv()
                    except ConnectionClosed as closed:
                        if closed.rcvd and closed.rcvd.code == code or refused(closed):
                            tally.rejected[closed.rcvd.code] += 1
                        else:
                            tally.failed.append(f"bad {name}: closed {closed}")
            await asyncio.sleep(0.05)


async def quitters(url: str, ws_url: str, until: float, tally: Tally, long_audio: bytes) -> None:
    while time.monotonic() < until:
        tally.sent += 1
        if random.random() < 0.5:
            async with httpx.AsyncClient(timeout=httpx.Timeout(60, read=0.3)) as client:
                try:
                    response = await client.post(f"{url}/v1/transcribe", content=long_audio)
                    if shed(response):
                        tally.rejected[503] += 1
                    else:
                        tally.failed.append(f"quitter: a 60 s file got {response.status_code} before it hung up")
                except httpx.ReadTimeout:
                    tally.succeeded += 1
        else:
            try:
                async with connect(ws_url) as ws:
                    await ws.send(pcm(SENTENCES[0])[:32000])
                    reply = json.loads(await ws.recv())
                    ws.transport.abort()  # gone, without a close frame
                tally.succeeded += "error" not in reply
                tally.rejected[TRY_AGAIN_LATER] += "error" in reply
            except ConnectionClosed as closed:
                if refused(closed):
                    tally.rejected[TRY_AGAIN_LATER] += 1
                else:
                    tally.failed.append(f"quitter: stream closed {closed}")
        await asyncio.sleep(0.2)


async def open_work(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    """Streams open and audio queued on the server now."""
    text = (await client.get(f"{url}/metrics")).text
    return {"streams": gauge(text, "asr_streams_in_flight"), "queued_s": gauge(text, "asr_audio_in_flight_seconds")}


async def sample(url: str, pid: int, until: float, samples: list[dict]) -> None:
    started = time.monotonic()
    async with httpx.AsyncClient() as client:
        while time.monotonic() < until:
            work = await open_work(client, url)
            samples.append({"t": round(time.monotonic() - started, 1), "rss_mb": round(resident_mb(pid), 1), **work})
            await asyncio.sleep(1)


async def settle(url: str, seconds: float = 15) -> dict:
    """After the load: wait for every stream to close and the queue to empty; what is left is stuck."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while True:
            left = await open_work(client, url)
            if not any(left.values()) or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.2)


async def soak(url: str, pid: int, seconds: float, counts: dict[str, int]) -> dict:
    audio, long_audio = clips(), long_flac(1)
    ws_url = url.replace("http", "ws") + "/v1/stream"
    tallies = {kind: Tally() for kind in counts}
    samples: list[dict] = []
    started = time.monotonic()
    until = started + seconds
    workers = [sample(url, pid, until, samples)]
    workers += [files(url, until, tallies["files"], audio) for _ in range(counts["files"])]
    workers += [streams(ws_url, until, tallies["streams"]) for _ in range(counts["streams"])]
    workers += [bad(url, ws_url, until, tallies["bad"]) for _ in range(counts["bad"])]
    workers += [quitters(url, ws_url, until, tallies["quitters"], long_audio) for _ in range(counts["quitters"])]
    await asyncio.gather(*workers)
    stuck = await settle(url)
    return {
        "seconds": round(time.monotonic() - started, 1),
        "clients": counts,
        **{kind: tally.report() for kind, tally in tallies.items()},
        "rss_mb_start": samples[0]["rss_mb"],
        "rss_mb_end": round(resident_mb(pid), 1),
        "rss_mb_max": max(s["rss_mb"] for s in samples),
        "stuck": stuck,
        "_samples": samples,
    }


def run(seconds: float, counts: dict[str, int], log: Path | None = None, **limits: int) -> dict:
    """Start a server with ``ASR_*`` ``limits``, soak it, and return the report (``_samples``: the memory trace)."""
    random.seed(0)
    with serve(log=log, log_level="warning", **limits) as (url, process):
        report = asyncio.run(soak(url, process.pid, seconds, counts))
    if log:
        text = log.read_text()
        report["server_errors_logged"] = text.count('"level": "error"') + text.count("Traceback")
    return report


def plot(samples: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, memory = plt.subplots(figsize=(8, 3.5))
    t = [s["t"] for s in samples]
    memory.plot(t, [s["rss_mb"] for s in samples], color="tab:blue")
    memory.set(xlabel="seconds", ylabel="server RSS (MB)", title="soak: server memory and open streams")
    open_streams = memory.twinx()
    open_streams.plot(t, [s["streams"] for s in samples], color="tab:orange", alpha=0.6)
    open_streams.set_ylabel("open streams")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--files", type=int, default=4, help="clients uploading files")
    parser.add_argument("--streams", type=int, default=4, help="clients streaming")
    parser.add_argument("--bad", type=int, default=2, help="clients sending bad input")
    parser.add_argument("--quitters", type=int, default=1, help="clients that hang up midway")
    parser.add_argument("--log", type=Path, help="keep the server's log here")
    parser.add_argument("--png", type=Path, help="draw the server's memory over the run here")
    parser.add_argument("--max-queue", type=int, help="the server's ASR_MAX_QUEUE (default: its own)")
    parser.add_argument("--max-streams", type=int, help="the server's ASR_MAX_STREAMS (default: its own)")
    args = parser.parse_args()
    counts = {"files": args.files, "streams": args.streams, "bad": args.bad, "quitters": args.quitters}
    limits = {name: getattr(args, name) for name in ("max_queue", "max_streams") if getattr(args, name)}
    report = run(args.seconds, counts, args.log, **limits)
    print(json.dumps({k: v for k, v in report.items() if not k.startswith("_")}, indent=1))
    if args.png:
        plot(report["_samples"], args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()

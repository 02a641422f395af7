"""Load generators against the real service on loopback: concurrent file requests and real-time streams.

Files: ``clients`` concurrent HTTP clients, each posting its share of the clips one after another.
Per request: latency, and real-time factor (latency over audio duration).

Streams: each stream sends spoken sentences separated by pauses, in real time (one chunk every
``chunk`` seconds, as a microphone would). Streams start spread evenly over one chunk's time, as
independent clients would, rather than all sending at the same instant. Two latencies:

- partial: from sending a chunk to receiving the partial that includes it (the bench's chunk is
  the service's partial interval, so every chunk inside an utterance is answered by a fresh read);
- final: from the end of an utterance's speech (when its last sample was spoken, in stream time)
  to receiving its result. It includes the pause that ends the utterance (``endpoint_silence_ms``).

It also samples ``asr_audio_in_flight_seconds``, the autoscaler's metric: a backlog that grows
means the server cannot keep up.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import httpx
import torch
from websockets.asyncio.client import connect

from tests.support.servers import gauge
from tests.support.speech import SENTENCES, speech

RATE = 16000


def stream_text(index: int) -> list[str]:
    """The three sentences that stream ``index`` says."""
    return [SENTENCES[(index + 3 * k) % len(SENTENCES)] for k in range(3)]


def stream_audio(index: int, pause: float) -> tuple[bytes, list[float]]:
    """:func:`stream_text` with pauses, as 16-bit PCM, and the stream time at which each sentence's speech ends."""
    parts, ends, at = [torch.zeros(RATE // 2)], [], 0.5
    for sentence in stream_text(index):
        clip = speech(sentence, rate=0.9 + 0.05 * (index % 5))
        voiced = torch.nonzero(clip.abs() > 0.01).flatten()
        ends.append(at + (int(voiced[-1]) + 1) / RATE)
        parts += [clip, torch.zeros(round(RATE * pause))]
        at += (clip.numel() + round(RATE * pause)) / RATE
    return (torch.cat(parts) * 32767).round().to(torch.int16).numpy().tobytes(), ends


async def run_stream(url: str, audio: bytes, ends: list[float], chunk: float, delay: float) -> dict:
    """One real-time stream of ``chunk``-second chunks, ``delay`` seconds from now: its latencies, in seconds,
    its results' texts, and its lag: how far behind real time its last chunk left, as the client waits for
    each chunk's reply before sending the next (a server that cannot keep up makes it grow)."""
    size = round(chunk * RATE) * 2
    partials, finals, texts, results, lag = [], [], [], 0, 0.0
    await asyncio.sleep(delay)
    async with connect(url) as ws:
        await ws.send(json.dumps({"config": {"sample_rate": RATE}}))
        started = time.perf_counter()
        for n, offset in enumerate(range(0, len(audio), size)):
            # A chunk leaves once its last sample has been spoken, as from a microphone.
            await asyncio.sleep(max(0.0, started + (n + 1) * chunk - time.perf_counter()))
            sent = time.perf_counter()
            lag = sent - (started + (n + 1) * chunk)
            await ws.send(audio[offset : offset + size])
            reply = json.loads(await ws.recv())
            received = time.perf_counter()
            if "result" in reply and results < len(ends):
                finals.append(received - (started + ends[results]))
                results += 1
            elif reply.get("partial"):
                partials.append(received - sent)
            if reply.get("text"):
                texts.append(reply["text"])
        await ws.send('{"eof" : 1}')
        if text := json.loads(await ws.recv()).get("text"):
            texts.append(text)
    return {"partials": partials, "finals": finals, "text": " ".join(texts), "lag": lag}


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def spread(values: list[float], name: str, scale: float = 1000.0, digits: int = 1) -> dict:
    """p50, p95 and p99 of ``values`` (seconds, shown in ms by default) under ``name``."""
    return {f"{name}_p{q}": round(scale * percentile(values, q), digits) for q in (50, 95, 99)} if values else {}


async def in_flight(url: str, samples: list[float]) -> None:
    """Sample the service's asr_audio_in_flight_seconds (what the autoscaler reads) every 200 ms."""
    async with httpx.AsyncClient() as client:
        while True:
            text = (await client.get(f"{url}/metrics")).text
            samples.append(gauge(text, "asr_audio_in_flight_seconds"))
            await asyncio.sleep(0.2)


async def streams(url: str, count: int, pause: float, chunk_seconds: float) -> dict:
    """``count`` concurrent real-time streams of three sentences each."""
    audio = [stream_audio(i, pause) for i in range(count)]
    samples: list[float] = []
    sampler = asyncio.create_task(in_flight(url, samples))
    ws_url = url.replace("http", "ws") + "/v1/stream"
    delays = [chunk_seconds * i / count for i in range(count)]
    runs = (run_stream(ws_url, a, e, chunk_seconds, d) for (a, e), d in zip(audio, delays, strict=True))
    outcomes = await asyncio.gather(*runs)
    sampler.cancel()
    partials = [x for outcome in outcomes for x in outcome["partials"]]
    finals = [x for outcome in outcomes for x in outcome["finals"]]
    return {
        "streams": count,
        "partials": len(partials),
        **spread(partials, "partial_ms"),
        "finals": len(finals),
        **spread(finals, "final_ms"),
        "audio_in_flight_s_mean": round(statistics.mean(samples), 2),
        "audio_in_flight_s_max": round(max(samples), 2),
        "lag_s_max": round(max(outcome["lag"] for outcome in outcomes), 2),
        "_partials": partials,
        "_finals": finals,
        "_texts": [outcome["text"] for outcome in outcomes],
    }


async def files(url: str, clients: int, clips: list[tuple[float, bytes]], requests: int) -> dict:
    """``requests`` WAV files posted by ``clients`` concurrent clients; throughput, per-request figures, and
    the text last read of each clip (by its index in ``clips``)."""
    latencies, factors, audio, failures, texts = [], [], 0.0, 0, {}
    jobs = iter((i % len(clips), *clips[i % len(clips)]) for i in range(requests))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal audio, failures
        for index, seconds, data in jobs:
            sent = time.perf_counter()
            response = await http.post(f"{url}/v1/transcribe", files={"file": ("clip.wav", data)})
            latency = time.perf_counter() - sent
            if response.status_code != 200 or not response.json()["text"]:
                failures += 1
                continue
            latencies.append(latency)
            factors.append(latency / seconds)
            audio += seconds
            texts[index] = response.json()["text"]

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        wall = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(latencies),
        "failures": failures,
        "audio_s": round(audio, 1),
        "wall_s": round(wall, 2),
        "audio_s_per_s": round(audio / wall, 1),
        **spread(latencies, "latency_ms"),
        **spread(factors, "rtf", scale=1.0, digits=3),
        "_latencies": latencies,
        "_texts": texts,
    }

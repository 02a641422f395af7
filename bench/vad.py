"""The streams' voice-activity detectors against each other, on clean, noisy and reverberant streams.

Each stream is three sentences (espeak-ng and flite voices) with pauses of 0.6 to 1.2 s between them,
under one condition: clean, a reverberant room, white noise, music or applause (Debian's frozen-bubble
sounds) at a signal-to-noise ratio. Each detector and endpoint (``ASR_STREAM_VAD``,
``ASR_STREAM_ENDPOINT_SILENCE_MS``) cuts the stream as the service does, fed in 100 ms chunks. Per
sentence, against where its speech starts and ends:

- found: one utterance holds all of it and no other sentence;
- cut: part of its speech lies outside every utterance, or in two (words lost or split);
- merged: its utterance also holds another sentence (an endpoint missed);
- false: utterances that hold no sentence's speech at all (noise taken for speech);
- delay: from the end of its speech to the moment its utterance closed, which the final result waits for.

And the detector's cost, in milliseconds of one core per second of audio of one stream.

    python -m bench.vad --streams 12 --json bench/results/vad.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from service.settings import Settings
from service.vad import Stream, Utterance
from tests.support.speech import SENTENCES, speech
from training.augment import gaussian_noise, mix, reverberate, room_response
from training.corpus import recorded_sound

RATE = 16000
CHUNK = RATE // 10
VOICES = ("en-us", "en-gb", "en-us+f3", "en-us+m3")
CONDITIONS = ("clean", "room", "white 10 dB", "music 10 dB", "music 5 dB", "applause 5 dB")
DETECTORS = (("energy", 500.0), ("neural", 500.0), ("energy", 300.0), ("neural", 300.0))


def stream(index: int, rng: random.Random) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    """Three sentences with pauses, and where each one's speech starts and ends, in seconds."""
    parts, spans, at = [torch.zeros(RATE // 2)], [], 0.5
    for k in range(3):
        said = speech(SENTENCES[(3 * index + k) % len(SENTENCES)], voice=VOICES[(index + k) % len(VOICES)])
        voiced = torch.nonzero(said.abs() > 0.01).flatten()
        spans.append((at + int(voiced[0]) / RATE, at + (int(voiced[-1]) + 1) / RATE))
        pause = torch.zeros(round(RATE * rng.uniform(0.6, 1.2)))
        parts += [said, pause]
        at += (said.numel() + pause.numel()) / RATE
    return torch.cat(parts), spans


def condition(audio: torch.Tensor, name: str, seed: int) -> torch.Tensor:
    if name == "clean":
        return audio
    if name == "room":
        response = room_response((7.0, 5.0, 3.0), 0.6, (2.0, 3.0, 1.6), (5.0, 1.5, 1.2))
        return reverberate(audio, response)
    kind, snr = name.split()[0], float(name.split()[1])
    noise = {
        "white": lambda: gaussian_noise(audio.numel(), seed),
        "music": lambda: recorded_sound("frozen-mainzik-1p"),
        "applause": lambda: recorded_sound("applause"),
    }[kind]()
    offset = random.Random(seed).randrange(max(1, noise.numel() - audio.numel()))
    return mix(audio, noise[offset:], snr)


def cut(audio: torch.Tensor, detector: str, endpoint_ms: float) -> tuple[list[tuple[Utterance, float]], float]:
    """The utterances, each with the stream time at which it closed, and the detector's CPU seconds."""
    vad = replace(Settings().vad, detector=detector, endpoint_silence_ms=endpoint_ms)
    cutter = Stream(RATE, vad)
    found, spent = [], 0.0
    for at in range(0, audio.numel(), CHUNK):
        started = time.process_time()
        closed = cutter.feed(audio[at : at + CHUNK])
        spent += time.process_time() - started
        found += [(u, (at + CHUNK) / RATE) for u in closed]
    if (rest := cutter.flush()) is not None:
        found.append((rest, audio.numel() / RATE))
    return found, spent


def judge(spans: list[tuple[float, float]], utterances: list[tuple[Utterance, float]]) -> dict:
    bounds = [(u.start, u.start + u.audio.numel() / RATE, closed) for u, closed in utterances]
    counts = {"found": 0, "cut": 0, "merged": 0, "false": 0, "delays": []}
    for start, end in spans:
        holding = [b for b in bounds if b[0] < end and start < b[1]]
        whole = [b for b in holding if b[0] <= start and end <= b[1]]
        if len(holding) != 1 or not whole:
            counts["cut"] += 1
            continue
        [(u_start, u_end, closed)] = whole
        if any(s < u_end and u_start < e for s, e in spans if (s, e) != (start, end)):
            counts["merged"] += 1
            continue
        counts["found"] += 1
        counts["delays"].append(closed - end)
    counts["false"] = sum(not any(s < b[1] and b[0] < e for s, e in spans) for b in bounds)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=12, help="streams of three sentences per condition")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a stream's share of the server
    rng = random.Random(0)
    made = [stream(i, rng) for i in range(args.streams)]
    rows = []
    for name in CONDITIONS:
        for detector, endpoint in DETECTORS:
            total = {"found": 0, "cut": 0, "merged": 0, "false": 0, "delays": []}
            seconds = spent = 0.0
            for i, (audio, spans) in enumerate(tqdm(made, desc=f"{name}, {detector} {endpoint:g} ms", leave=False)):
                heard = condition(audio, name, seed=i)
                utterances, cpu = cut(heard, detector, endpoint)
                for key, value in judge(spans, utterances).items():
                    total[key] += value
                seconds, spent = seconds + heard.numel() / RATE, spent + cpu
            delays = total.pop("delays")
            row = {"condition": name, "detector": detector, "endpoint_ms": endpoint, **total}
            row |= {"sentences": 3 * len(made), "ms_per_audio_second": round(1000 * spent / seconds, 2)}
            row["delay_ms_median"] = round(1000 * statistics.median(delays)) if delays else None
            rows.append(row)
            print(json.dumps(row), flush=True)
    print("\n| condition | detector, endpoint | found | cut | merged | false | delay p50 | ms per audio s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['condition']} | {r['detector']}, {r['endpoint_ms']:g} ms | {r['found']} / {r['sentences']} | "
            f"{r['cut']} | {r['merged']} | {r['false']} | {r['delay_ms_median']} ms | {r['ms_per_audio_second']} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

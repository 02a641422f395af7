"""What the memory cases of docs/reliability.md cost the real server: its resident memory before and after each.

Each case runs against one fresh ``python -m service`` (the defaults) and is judged by the server's
growth, which must stay under ``--budget`` MB (300):

- files at sample rates that share no factor with 16 kHz (4001, 8001 and 191999 Hz), whose
  resampling table alone was about 1 GB at 4001 Hz;
- a stream configured at 191999 Hz (a 12 GB allocation request before);
- 34 requests, each with a hotword the lexicon lacks (each used to keep a copy of the 104k-word tree).

Prints one line per case and a JSON report; exits 1 if a case grew the server past the budget.

    python -m bench.memory
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import torch
from tqdm import tqdm
from websockets.sync.client import connect

from tests.support.servers import resident_mb, serve
from tests.support.speech import encode, speech

SENTENCE = "open the garage door please"


def _settled_mb(pid: int) -> float:
    """Resident memory once the server's heap trimming (once a second) has run."""
    time.sleep(1.5)
    return resident_mb(pid)


def odd_rate_files(url: str) -> int:
    for rate in tqdm((4001, 8001, 191999), desc="odd-rate files", leave=False):
        wav = encode(speech(SENTENCE, sample_rate=rate)[None], rate, "wav")
        httpx.post(f"{url}/v1/transcribe", content=wav, timeout=120).raise_for_status()
    return 3


def odd_rate_stream(url: str) -> int:
    rate = 191999
    audio = torch.cat([speech(SENTENCE, sample_rate=rate), torch.zeros(rate)])
    pcm = (audio * 32767).to(torch.int16).numpy().tobytes()
    with connect(url.replace("http://", "ws://") + "/v1/stream", max_size=None) as ws:
        ws.send(json.dumps({"config": {"sample_rate": rate}}))
        chunk = 2 * rate // 5
        for i in tqdm(range(0, len(pcm), chunk), desc="191999 Hz stream", leave=False):
            ws.send(pcm[i : i + chunk])
            ws.recv(timeout=60)
        ws.send('{"eof" : 1}')
        ws.recv(timeout=60)
    return 1


def hotword_sets(url: str, count: int = 34) -> int:
    wav = encode(speech(SENTENCE)[None], 16000, "wav")
    for n in tqdm(range(count), desc="hotword sets", leave=False):
        word = "zq" + "".join("abcdefghij"[int(d)] for d in f"{n:04d}")
        response = httpx.post(f"{url}/v1/transcribe", params={"hotwords": word}, content=wav, timeout=120)
        response.raise_for_status()
    return count


CASES = {"odd-rate-files": odd_rate_files, "odd-rate-stream": odd_rate_stream, "hotword-sets": hotword_sets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=300.0, help="most growth per case, in MB")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES), help="the cases to run")
    args = parser.parse_args()
    report = {}
    log = Path(tempfile.mkdtemp()) / "server.log"
    for name in args.cases:
        case = CASES[name]
        with serve(log) as (url, process):
            before = _settled_mb(process.pid)
            requests = case(url)
            after = _settled_mb(process.pid)
            peak = resident_mb(process.pid, "VmHWM")
        grown = after - before
        report[name] = {"requests": requests, "before_mb": before, "after_mb": after, "peak_mb": peak}
        verdict = "MET" if grown < args.budget else "MISSED"
        figures = f"{before:.0f} -> {after:.0f} MB (+{grown:.0f}, peak {peak:.0f}; budget {args.budget:.0f})"
        print(f"{name}: {figures} {verdict}")
    print(json.dumps(report, indent=1))
    sys.exit(0 if all(r["after_mb"] - r["before_mb"] < args.budget for r in report.values()) else 1)


if __name__ == "__main__":
    main()

"""One long file through ``POST /v1/transcribe``: speed, and the server's peak memory against the file's length.

Builds files of the given lengths (spoken sentences and pauses, tiled, FLAC), sends each to a
fresh server and prints a JSON line per file: processing time, real-time factor, windows, and the
server's peak resident memory. Memory that does not grow with the length is what windowed
decoding promises.

    python -m bench.long_file --minutes 5 60
"""

from __future__ import annotations

import argparse
import io
import json
import time

import av
import httpx
import numpy as np
import torch

from tests.support.servers import resident_mb, serve
from tests.support.speech import SENTENCES, speech

RATE = 16000


def long_flac(minutes: float) -> bytes:
    """Sentences with pauses, repeated to ``minutes``, encoded as 16 kHz FLAC a piece at a time."""
    unit = torch.cat([torch.cat([speech(text), torch.zeros(RATE)]) for text in SENTENCES])
    total = round(minutes * 60 * RATE)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as out:
        stream = out.add_stream("flac", rate=RATE, layout="mono")
        for start in range(0, total, unit.numel()):
            piece = unit[: min(unit.numel(), total - start)].numpy().astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[5, 60])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    for minutes in args.minutes:
        data = long_flac(minutes)
        with serve(device=args.device, log_level="warning") as (url, process):
            idle = resident_mb(process.pid, "VmHWM")
            started = time.perf_counter()
            response = httpx.post(f"{url}/v1/transcribe", files={"file": ("long.flac", data)}, timeout=3600)
            seconds = time.perf_counter() - started
            response.raise_for_status()
            body = response.json()
            print(
                json.dumps(
                    {
                        "audio_minutes": round(body["duration"] / 60, 1),
                        "upload_mb": round(len(data) / 1e6, 1),
                        "seconds": round(seconds, 1),
                        "real_time_factor": round(body["duration"] / seconds, 1),
                        "words": len(body["words"]),
                        "segments": len(body["segments"]),
                        "server_peak_rss_mb_before": round(idle),
                        "server_peak_rss_mb": round(resident_mb(process.pid, "VmHWM")),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Many clients at once: 32 file requests and 8 live streams share forward passes and all get their own text."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from websockets.sync.client import connect

from asr.audio import decode
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.language_model import DEFAULT_LM
from asr.transcriber import Transcriber
from tests.support.servers import metric, session, ws_url
from tests.support.speech import pcm, speak

TEXTS = [
    "turn off the kitchen lights",
    "what time is it",
    "call alice on monday",
    "play some music",
    "set a timer for ten minutes",
    "open the garage door",
    "is it going to rain today",
    "read me the news",
]
VOICES = ["en-us", "en-gb-x-rp", "en-us+f3", "en-029"]


def _batch_counts(url: str) -> tuple[float, float]:
    """Forward passes so far, and the clips they held."""
    return metric(url, "asr_batch_size_count"), metric(url, "asr_batch_size_sum")


def test_32_files_and_8_streams_at_once(server):
    url, _ = server
    files = [speak(TEXTS[i % 8], voice=VOICES[i % 4], rate=130 + 3 * i) for i in range(32)]
    transcriber = Transcriber.from_checkpoint(DEFAULT_CHECKPOINT, "cpu", "fp32", DEFAULT_LM)
    expected_files = [transcriber.transcribe([decode(f)])[0].text for f in files]
    streams = [pcm(16000, sentences=[TEXTS[i], TEXTS[(i + 3) % 8]])[0] for i in range(8)]

    def stream(audio: bytes) -> list[str]:
        with connect(ws_url(server[0])) as ws:
            replies = session(ws, audio, 6400)
            ws.send('{"eof" : 1}')
            replies.append(json.loads(ws.recv(timeout=60)))
        return [r["text"] for r in replies if r.get("text")]

    expected_streams = [stream(audio) for audio in streams]  # each alone, one after another
    assert all(len(texts) == 2 for texts in expected_streams)

    before = _batch_counts(url)
    start = threading.Barrier(40)

    def post(data: bytes) -> str:
        start.wait()
        response = httpx.post(f"{url}/v1/transcribe", files={"file": ("a.wav", data)}, timeout=120)
        assert response.status_code == 200, response.text
        return response.json()["text"]

    def live(audio: bytes) -> list[str]:
        start.wait()
        return stream(audio)

    with ThreadPoolExecutor(40) as pool:
        posted = [pool.submit(post, data) for data in files]
        streamed = [pool.submit(live, audio) for audio in streams]
        assert [f.result() for f in posted] == expected_files
        assert [f.result() for f in streamed] == expected_streams

    batches, clips = (after - was for after, was in zip(_batch_counts(url), before, strict=True))
    print(f"{clips:.0f} clips in {batches:.0f} forward passes")
    assert clips >= 32 + 8 * 2 and clips / batches >= 2  # the metrics show forward passes shared

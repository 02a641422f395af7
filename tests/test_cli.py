"""The ``asr`` command against the real service: formats, exit codes, progress, streaming."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

from client import transcribe
from tests.support.servers import serve
from tests.support.speech import speak
from training.metrics import cer

ASR = Path(sys.executable).parent / "asr"
SENTENCES = ["turn off the kitchen lights", "what is the weather in paris"]


def asr(*args: object, url: str | None = None, **env: str) -> subprocess.CompletedProcess:
    """Run ``asr ARGS``; its output decoded as is (text mode would turn the partials' ``\r`` into newlines)."""
    environment = {**os.environ, **({"ASR_URL": url} if url else {}), **env}
    done = subprocess.run([ASR, *map(str, args)], capture_output=True, env=environment, timeout=120, check=False)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("clips")
    paths = [folder / f"clip{n}.wav" for n in range(len(SENTENCES))]
    for path, text in zip(paths, SENTENCES, strict=True):
        path.write_bytes(speak(text))
    return paths


def test_text_and_json_match_what_the_service_answers(server, clips):
    url, _ = server
    expected = [httpx.post(f"{url}/v1/transcribe", content=p.read_bytes(), timeout=60).json() for p in clips]
    single = asr("transcribe", clips[0], url=url)
    assert single.returncode == 0 and single.stdout == expected[0]["text"] + "\n"
    both = asr("transcribe", *clips, "--format", "json", url=url)
    assert both.returncode == 0
    rows = [json.loads(line) for line in both.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(p) for p in clips]
    assert [r["text"] for r in rows] == [e["text"] for e in expected]
    assert all(cer([s], [r["text"]]) <= 0.35 for s, r in zip(SENTENCES, rows, strict=True))
    several = asr("transcribe", *clips, url=url)
    assert several.stdout == "".join(f"==> {p} <==\n{e['text']}\n" for p, e in zip(clips, expected, strict=True))


def test_captions_and_output_files(server, clips, tmp_path):
    url, _ = server
    srt = asr("transcribe", clips[0], "--format", "srt", url=url).stdout
    assert srt.startswith("1\n00:00:00,") and " --> 00:00:0" in srt and srt.endswith("\n\n")
    vtt = asr("transcribe", clips[0], "--format", "vtt", url=url).stdout
    assert vtt.startswith("WEBVTT\n\n00:00:00.")
    done = asr("transcribe", *clips, "--format", "vtt", "--output-dir", tmp_path / "out", url=url)
    assert done.returncode == 0 and done.stdout == ""
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clip0.vtt", "clip1.vtt"]
    assert (tmp_path / "out" / "clip0.vtt").read_text() == vtt


def test_decoding_flags_reach_the_service(server, tmp_path):
    url, _ = server
    rare = tmp_path / "rare.wav"
    rare.write_bytes(speak("send the files to kubernetes now"))
    assert "kubernetes" not in asr("transcribe", rare, url=url).stdout
    assert asr("transcribe", rare, "--hotwords", "kubernetes", url=url).stdout == "send the files to kubernetes now\n"
    greedy = asr("transcribe", rare, "--decoder", "greedy", url=url).stdout
    assert greedy == httpx.post(f"{url}/v1/transcribe?decoder=greedy", content=rare.read_bytes()).json()["text"] + "\n"


def test_exit_codes_scripts_can_rely_on(server, clips, tmp_path):
    url, _ = server
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF, but not really")
    some = asr("transcribe", clips[0], broken, url=url)
    assert some.returncode == 1  # the server refused one file; the other is still transcribed
    assert some.stdout.startswith(f"==> {clips[0]} <==\n") and f"{broken}: " in some.stderr
    missing = asr("transcribe", tmp_path / "nowhere.wav", url=url)
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert asr("transcribe", "--format", "pdf", clips[0], url=url).returncode == 2
    assert asr("stream", url=url).returncode == 2  # a FILE or --mic
    no_microphone = asr("stream", "--mic", url=url)  # these machines have no sound device
    assert no_microphone.returncode == 2 and (
        "--mic needs" in no_microphone.stderr or "no microphone" in no_microphone.stderr
    )
    unreachable = asr("transcribe", clips[0], "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr
    assert asr("stream", clips[0], "--url", "http://127.0.0.1:9").returncode == 3
    no_scheme = asr("stream", clips[0], "--url", url.removeprefix("http://"))
    assert no_scheme.returncode == 2 and "needs a scheme" in no_scheme.stderr
    refused = asr("stream", clips[0], "--fast", "--beam-size", "5000", url=url)  # the server refuses the config
    assert refused.returncode == 1 and "asr: beam_size" in refused.stderr and "1024" in refused.stderr


def test_the_api_key_comes_from_the_flag_or_the_environment(tmp_path, clips):
    with serve(tmp_path / "server.log", device="cpu", lm="", api_keys="sesame") as (url, _):
        refused = asr("transcribe", clips[0], url=url)
        assert refused.returncode == 3 and "API key" in refused.stderr
        assert asr("transcribe", clips[0], "--api-key", "sesame", url=url).returncode == 0
        assert asr("transcribe", clips[0], url=url, ASR_API_KEY="sesame").returncode == 0
        stream_refused = asr("stream", clips[0], "--fast", url=url)
        assert stream_refused.returncode == 3 and "API key" in stream_refused.stderr  # the server's own message
        assert asr("stream", clips[0], "--fast", url=url, ASR_API_KEY="sesame").returncode == 0


def test_stream_prints_partials_in_place_and_finals_line_by_line(server, clips, tmp_path):
    url, _ = server
    talk = tmp_path / "talk.wav"
    first, rate = soundfile.read(clips[0], dtype="int16")
    second, _ = soundfile.read(clips[1], dtype="int16")
    pause = np.zeros(rate, dtype=np.int16)
    soundfile.write(talk, np.concatenate([first, pause, second, pause]), rate)
    done = asr("stream", talk, "--fast", url=url)
    assert done.returncode == 0, done.stderr
    finals = done.stdout.splitlines()
    assert len(finals) == 2
    assert all(cer([s], [f]) <= 0.35 for s, f in zip(SENTENCES, finals, strict=True)), finals
    partials = [p for p in done.stderr.split("\r\x1b[K") if p]
    assert len(partials) >= 3 and len(set(partials)) == len(partials)  # each change shown once, in place


def test_real_time_pacing_takes_as_long_as_the_audio(server, clips):
    url, _ = server
    started = time.monotonic()
    assert asr("stream", clips[0], url=url).returncode == 0
    assert time.monotonic() - started >= soundfile.info(clips[0]).duration


def test_a_refusal_from_something_else_than_the_service_is_still_reported():
    proxy = httpx.Response(502, text="<html>Bad Gateway</html>")
    assert transcribe.refusal(proxy) == "HTTP 502: <html>Bad Gateway</html>"
    ours = httpx.Response(400, json={"error": {"message": "file: not audio"}})
    assert transcribe.refusal(ours) == "file: not audio"

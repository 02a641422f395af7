"""Where the service's time goes under load: py-spy samples the server and its decoding processes.

Starts the real service (default settings, or ``--set``), puts the suite's load on it (32 file clients, or
32 real-time streams), and samples every thread of the server and of its children with py-spy for the
load's duration. Prints, per process and thread, the share of samples and the functions that hold most of
them (by the frame where the sample landed, and by the project function that called down to it), and
writes the raw stacks for a flame graph (``py-spy``'s collapsed format).

    python -m bench.profile files --out bench/results      # about 1 minute each
    python -m bench.profile streams --out bench/results
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from bench import load
from bench.suite import clips
from tests.support.servers import serve
from tests.support.speech import encode

RATE = 16000
PROJECT = ("asr/", "service/")


def py_spy() -> str:
    """py-spy beside this interpreter (the venv's), or on the PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: pip install -e '.[bench]'")
    return found


def record(pid: int, out: Path, seconds: float) -> subprocess.Popen:
    """py-spy recording ``pid`` and its child processes, every thread, idle ones left out."""
    command = [py_spy(), "record", "--pid", str(pid), "--subprocesses", "--threads", "--nonblocking"]
    command += ["--format", "raw", "--rate", "50", "--duration", str(round(seconds)), "--output", str(out)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(stacks: Path, top: int) -> str:
    """Per process and thread, their shares of all samples and their heaviest frames."""
    by_thread: collections.Counter = collections.Counter()
    leaves: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    callers: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in stacks.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stack = re.sub(r'(process \d+):"[^"]*"', r"\1", stack)  # a command line may hold a ";"
        frames = stack.split(";")
        named = next(i for i, frame in enumerate(frames) if frame.startswith("thread ")) + 1
        thread, calls = _thread_name(frames[:named]), frames[named:]
        by_thread[thread] += int(count)
        if calls:
            leaves[thread][_short(calls[-1])] += int(count)
            ours = [f for f in calls if any(part in f for part in PROJECT)]
            callers[thread][_short(ours[-1]) if ours else "(outside the project)"] += int(count)
    total = sum(by_thread.values())
    lines = []
    for thread, count in by_thread.most_common():
        if count < 0.02 * total:
            continue
        lines.append(f"\n{thread}: {100 * count / total:.1f}% of samples")
        lines += [f"  {100 * n / total:5.1f}%  at {frame}" for frame, n in leaves[thread].most_common(top)]
        lines += [f"  {100 * n / total:5.1f}%  in {frame}" for frame, n in callers[thread].most_common(top)]
    return "\n".join(lines)


def _thread_name(frames: list[str]) -> str:
    """``process PID, thread NAME`` of the innermost process: the server, or one of its decoding workers."""
    role = "server" if len(frames) == 2 else "its child"
    return f"{frames[-2]} ({role}), thread {frames[-1].split(': ', 1)[-1]}"


def _short(frame: str) -> str:
    """``function (path/to/file.py:line)`` with the path cut to the package."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").split(":")[0]
    parts = Path(path).parts
    return f"{name} ({'/'.join(parts[-2:])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("load", choices=["files", "streams"])
    parser.add_argument("--clients", type=int, default=32, help="file clients or streams")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--top", type=int, default=6, help="frames listed per thread")
    parser.add_argument("--set", nargs="+", default=[], metavar="NAME=VALUE", help="ASR_ settings")
    args = parser.parse_args()
    py_spy()
    args.out.mkdir(parents=True, exist_ok=True)
    stacks = args.out / f"profile-{args.load}.txt"
    settings = {"log_level": "warning"} | dict(setting.split("=", 1) for setting in args.set)
    data = [(seconds, encode(waveform[None], RATE, "wav")) for seconds, waveform, _ in clips(24)]
    with serve(args.out / "profile-server.log", **settings) as (url, process):
        if args.load == "files":
            work = lambda: asyncio.run(load.files(url, args.clients, data, requests=4 * args.clients))  # noqa: E731
            seconds = 25.0
        else:
            work = lambda: asyncio.run(load.streams(url, args.clients, pause=1.0, chunk_seconds=0.4))  # noqa: E731
            seconds = 12.0
        runner = threading.Thread(target=work)
        runner.start()
        spy = record(process.pid, stacks, seconds)
        spy.wait()
        runner.join()
    print(f"{args.load}, {args.clients} at once, {os.cpu_count()} cores: py-spy's samples by process and thread")
    print(summarise(stacks, args.top))
    print(f"\nwrote {stacks}")


if __name__ == "__main__":
    main()

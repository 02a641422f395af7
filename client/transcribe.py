"""``asr transcribe``: files to the service's ``POST /v1/transcribe``, results in four formats."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
from tqdm import tqdm

from asr import captions
from asr.transcript import Segment

FORMATS = ("text", "json", "srt", "vtt")
_CHUNK = 256 * 1024


class Unreachable(RuntimeError):
    """The server cannot be used at all: not listening, or refusing the API key."""


def render(result: dict, kind: str) -> str:
    """One file's ``/v1/transcribe`` answer as ``kind`` (one of :data:`FORMATS`)."""
    if kind == "text":
        return result["text"] + "\n"
    if kind == "json":
        return json.dumps(result) + "\n"
    segments = [Segment(s["start"], s["end"], s["text"]) for s in result["segments"]]
    return captions.srt(segments) if kind == "srt" else captions.vtt(segments)


def _upload(path: Path, progress: tqdm) -> Iterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            progress.update(len(chunk))
            yield chunk


def refusal(response: httpx.Response) -> str:
    """The service's error message, or the status and body of whatever else answered (a proxy, say)."""
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}: {response.text[:200]}"


def transcribe(client: httpx.Client, path: Path, query: dict, progress: tqdm) -> dict:
    """The service's JSON for ``path``; a refusal raises :class:`httpx.HTTPStatusError`."""
    progress.set_postfix_str(path.name)
    try:
        response = client.post("/v1/transcribe", params=query, content=_upload(path, progress))
    except httpx.TransportError as error:
        raise Unreachable(f"cannot reach {client.base_url}: {error}") from None
    if response.status_code == 401:
        raise Unreachable(refusal(response))
    response.raise_for_status()
    return response.json()

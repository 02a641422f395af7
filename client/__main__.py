"""asr transcribe FILE... and asr stream FILE (or --mic): the service from a terminal or a script.

Exit codes: 0 when everything was transcribed; 1 when the server refused or failed some file (or
ended a stream with an error, which is printed), the others still done; 2 for a bad command line (a
URL without http:// or https://), a missing file or no microphone; 3 when the server cannot be used at
all (not reachable, or the API key is refused).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import httpx
from tqdm import tqdm

from client import live, transcribe

OK, FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3
DEFAULT_URL = "http://127.0.0.1:8000"


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{text!r} needs a scheme: http://HOST:PORT or https://HOST:PORT")
    return text


def _headers(api_key: str | None) -> dict:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _decoding(args: argparse.Namespace) -> dict:
    """The decoding query fields the command line set."""
    fields = {"decoder": args.decoder, "beam_size": args.beam_size, "hotwords": args.hotwords or None}
    return {k: v for k, v in fields.items() if v is not None}


def _transcribe(args: argparse.Namespace) -> int:
    if missing := [str(p) for p in args.files if not p.is_file()]:
        print(f"asr: no such file: {', '.join(missing)}", file=sys.stderr)
        return USAGE
    if args.output_dir:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    status = OK
    total = sum(p.stat().st_size for p in args.files)
    timeout = httpx.Timeout(30.0, read=None)  # a long file takes a while to come back
    with (
        httpx.Client(base_url=args.url, headers=_headers(args.api_key), timeout=timeout) as client,
        tqdm(total=total, unit="B", unit_scale=True, desc="uploading", disable=args.quiet or None) as progress,
    ):
        for path in args.files:
            try:
                result = transcribe.transcribe(client, path, _decoding(args), progress)
            except httpx.HTTPStatusError as error:
                tqdm.write(f"asr: {path}: {transcribe.refusal(error.response)}", file=sys.stderr)
                status = FAILED
                continue
            text = transcribe.render({"file": str(path), **result} if args.format == "json" else result, args.format)
            if args.output_dir:
                (args.output_dir / f"{path.stem}.{args.format}").write_text(text)
            elif len(args.files) > 1 and args.format != "json":
                sys.stdout.write(f"==> {path} <==\n{text}")
            else:
                sys.stdout.write(text)
    return status


def _stream(args: argparse.Namespace) -> int:
    if (args.file is None) == (not args.mic):
        print("asr: stream takes a FILE or --mic", file=sys.stderr)
        return USAGE
    if args.file is not None and not args.file.is_file():
        print(f"asr: no such file: {args.file}", file=sys.stderr)
        return USAGE
    url = args.url.replace("http", "ws", 1).rstrip("/") + "/v1/stream"
    config = _decoding(args)
    try:
        if args.mic:  # a live source paces itself
            chunks, real_time = live.microphone(args.chunk_ms), False
        else:
            chunks, real_time = live.pcm(str(args.file), args.chunk_ms), not args.fast
        live.stream(url, _headers(args.api_key), chunks, config, real_time)
    except live.StreamFailed as error:
        print(f"\nasr: {error}", file=sys.stderr)
        return FAILED
    except live.NoMicrophone as error:
        print(f"asr: {error}", file=sys.stderr)
        return USAGE
    return OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--url",
        type=_url,
        default=os.environ.get("ASR_URL", DEFAULT_URL),
        help="the service (default: $ASR_URL or %(default)s)",
    )
    server.add_argument("--api-key", default=os.environ.get("ASR_API_KEY"), help="default: $ASR_API_KEY")
    server.add_argument("--hotwords", nargs="+", metavar="WORD", help="words or phrases to favour")
    server.add_argument("--decoder", choices=["beam", "greedy"], help="default: the server's")
    server.add_argument("--beam-size", type=int, help="default: the server's")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    p = commands.add_parser("transcribe", parents=[server], help="transcribe files over HTTP")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--format", choices=transcribe.FORMATS, default="text", help="default: %(default)s")
    p.add_argument("--output-dir", type=Path, help="write FILE's result to DIR/STEM.FORMAT instead of stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_transcribe)

    p = commands.add_parser("stream", parents=[server], help="stream a file over the WebSocket, printing live text")
    p.add_argument("file", type=Path, nargs="?", metavar="FILE")
    p.add_argument("--mic", action="store_true", help="the microphone instead of a file, until Ctrl-C")
    p.add_argument("--fast", action="store_true", help="send as fast as the server answers, not in real time")
    p.add_argument("--chunk-ms", type=float, default=200.0, help="audio per message (default %(default)s)")
    p.set_defaults(run=_stream)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except transcribe.Unreachable as error:
        print(f"\nasr: {error}", file=sys.stderr)
        return UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())

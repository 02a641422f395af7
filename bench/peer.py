"""PocketSphinx, the peer recogniser of the performance benchmark, on the speech our service decodes.

Decodes with PocketSphinx's default US-English model (acoustic model, dictionary and language
model all ship in the ``pocketsphinx`` wheel; nothing is downloaded) so our speed and accuracy
sit beside an established recogniser's, measured on this machine. Prints one JSON line: audio
seconds decoded per wall second over ``--processes`` workers, and the word error rate.

    python -m bench.peer --processes 2
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import time
from multiprocessing.synchronize import Barrier

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

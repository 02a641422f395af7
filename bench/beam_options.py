"""The beam search's speed options against its accuracy, each on the same log-probabilities.

Per set (a corpus split, or the real dev set): CER, WER and decoding milliseconds per audio second (one
core) of greedy decoding and of beam search with the LM at each beam width, score threshold and blank
skip (:func:`asr.beam.kept_frames`). The acoustic model runs once per utterance, in fp32, untimed. Narrow
beams are what partial reads use: their rows show what such a beam does to whole utterances' text.

    python -m bench.beam_options corpora/tuning/dev /tmp/asr-realdev --json bench/results/beam_options.json
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from asr.beam import Beam, BeamDecoder
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.decoding import greedy_decode
from asr.language_model import DEFAULT_LM, DecodingDefaults, LanguageModel
from bench.decoding import _timed, acoustic_model, read, table
from training.metrics import cer, wer

OPTIONS = [(128, 15.0, 1.0), (128, 15.0, 0.999), (128, 10.0, 1.0), (128, 10.0, 0.999), (32, 10.0, 0.999)]
OPTIONS += [(16, 10.0, 0.999), (8, 10.0, 0.999)]
"""(beam, threshold, blank skip): the first is the default before issue 20, a blank skip of 1 skips nothing."""


def measure(log_probs: list[torch.Tensor], references: list[str], frame_seconds: float, lm: LanguageModel) -> dict:
    """CER, WER and decoding cost by decoding."""
    decoder = BeamDecoder(lm)
    decodes = {"greedy": lambda lp: greedy_decode(lp, frame_seconds).text}
    for beam, threshold, skip in OPTIONS:
        defaults = replace(lm.defaults, beam_threshold=threshold, blank_skip=skip)
        decodes[f"beam {beam}, threshold {threshold:g}, blank skip {skip:g}"] = _beam(
            decoder, defaults, beam, frame_seconds
        )
    rows = {}
    for name, decode in decodes.items():
        texts, cost = _timed(decode, log_probs, frame_seconds)
        rows[name] = {"cer": cer(references, texts), "wer": wer(references, texts), "ms_per_audio_second": cost}
    return rows


def _beam(decoder: BeamDecoder, defaults: DecodingDefaults, beam: int, frame_seconds: float):
    """Decoding with one decoder (one copy of the LM) at these defaults and beam."""
    options = Beam(beam_size=beam)

    def decode(log_probs: torch.Tensor) -> str:
        decoder.defaults = defaults
        return decoder.decode(log_probs, frame_seconds, options=options)[0].text

    return decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sets", type=Path, nargs="+", help="split folders, or folders with a manifest.tsv")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--lm", type=Path, default=DEFAULT_LM)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    model, info, frame_seconds = acoustic_model(args.checkpoint)
    lm = LanguageModel.load(args.lm)
    results = {"checkpoint": str(args.checkpoint), "lm": str(args.lm)}
    for folder in args.sets:
        log_probs, references = read(folder, model, info)
        results[str(folder)] = measure(log_probs, references, frame_seconds, lm)
        print(table(f"{folder} ({len(references)} utterances)", results[str(folder)]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

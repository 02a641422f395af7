"""Greedy against beam search against beam search with the LM: accuracy, decoding cost, and hotwords.

Per split: CER and WER of greedy decoding, of the beam kept to the LM's vocabulary without the LM
(alpha = beta = 0), and of the beam with the LM at its tuned weights; the decoding time per second
of audio (decoding only: the acoustic model runs once per utterance, in fp32, and is not timed).

Hotwords, on dev: each reference word that the LM has never seen in its text (so the tuned beam
cannot say it) and that the beam missed is boosted alone in its own utterance; it counts as
recognised when the boosted transcript holds it. Then, for a few of them, the whole dev split is
decoded with that one word boosted, and the WER of the utterances without it compared with no boost.

    python -m bench.decoding corpora/tuning --splits dev --json bench/results/decoding.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from asr import checkpoint
from asr.beam import Beam, BeamDecoder
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.decoding import greedy_decode
from asr.language_model import DEFAULT_LM, LanguageModel
from training import evaluation
from training.data import FeatureDataset, load
from training.metrics import cer, wer


def _timed(decode, log_probs: list[torch.Tensor], frame_seconds: float) -> tuple[list[str], float]:
    """Texts, and decoding milliseconds per second of audio."""
    started = time.perf_counter()
    texts = [decode(lp) for lp in tqdm(log_probs, desc="decoding", unit="utt", leave=False)]
    audio = sum(len(lp) for lp in log_probs) * frame_seconds
    return texts, 1000 * (time.perf_counter() - started) / audio


def acoustic_model(path: Path) -> tuple:
    """The checkpoint's model, its info and its frame length, on the CPU with at most two threads."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model, info = checkpoint.load(path, "cpu")
    return model, info, model.config.frame_seconds(info.feature_config)


def read(folder: Path, model, info) -> tuple[list[torch.Tensor], list[str]]:
    """Each utterance's log-probabilities (the acoustic model run once, in fp32) and its reference."""
    dataset = FeatureDataset(load([folder], info.feature_config), info.feature_config)
    return evaluation.log_probs(model, dataset), [r.text for r in dataset.recordings]


def table(title: str, rows: dict[str, dict]) -> str:
    """Markdown: CER, WER and decoding cost per decoding."""
    lines = [f"\n{title}", "| decoding | CER | WER | ms per audio s |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {name} | {100 * r['cer']:.2f}% | {100 * r['wer']:.2f}% | {r['ms_per_audio_second']:.2f} |"
        for name, r in rows.items()
    ]
    return "\n".join(lines)


def compare(log_probs: list[torch.Tensor], references: list[str], frame_seconds: float, lm: LanguageModel) -> dict:
    with_lm, lexicon_only = BeamDecoder(lm), BeamDecoder(None, lm.vocabulary)
    beam = Beam(beam_size=lm.defaults.beam_size)
    methods = {
        "greedy": lambda lp: greedy_decode(lp, frame_seconds).text,
        "beam, lexicon, no LM": lambda lp: lexicon_only.decode(lp, frame_seconds, options=beam)[0].text,
        "beam + LM": lambda lp: with_lm.decode(lp, frame_seconds)[0].text,
    }
    rows = {}
    for name, decode in methods.items():
        texts, cost = _timed(decode, log_probs, frame_seconds)
        rows[name] = {"cer": cer(references, texts), "wer": wer(references, texts), "ms_per_audio_second": cost}
    return rows


def hotwords(
    log_probs: list[torch.Tensor], references: list[str], frame_seconds: float, lm: LanguageModel, sweeps: int
) -> dict:
    decoder = BeamDecoder(lm)
    floor = decoder.unigram("<unk>") + 1e-6  # what a word only the dictionary lists gets, too
    best = [decoder.decode(lp, frame_seconds)[0].text.split() for lp in tqdm(log_probs, desc="beam", leave=False)]
    candidates = []
    for i, (reference, hypothesis) in enumerate(zip(references, best, strict=True)):
        for word in dict.fromkeys(reference.split()):
            if decoder.unigram(word) <= floor and word not in hypothesis and len(word) > 3:
                candidates.append((i, word))
    recognised = []
    for i, word in tqdm(candidates, desc="boosting", leave=False):
        text = decoder.decode(log_probs[i], frame_seconds, options=Beam(hotwords=(word,)))[0].text
        recognised.append(word in text.split())
    effects = []
    for _, word in [c for c, ok in zip(candidates, recognised, strict=True) if ok][:sweeps]:
        rest = [i for i, r in enumerate(references) if word not in r.split()]
        options = Beam(hotwords=(word,))
        boosted = [decoder.decode(log_probs[i], frame_seconds, options=options)[0].text for i in rest]
        plain = [" ".join(best[i]) for i in rest]
        refs = [references[i] for i in rest]
        effects.append({"word": word, "wer": wer(refs, plain), "wer_boosted": wer(refs, boosted)})
    return {
        "candidates": len(candidates),
        "recognised": sum(recognised),
        "examples": [w for (_, w), ok in zip(candidates, recognised, strict=True) if ok][:10],
        "missed": [w for (_, w), ok in zip(candidates, recognised, strict=True) if not ok][:10],
        "rest_of_dev": effects,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a corpus root with the split folders")
    parser.add_argument("--splits", nargs="+", default=["dev", "test"])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--lm", type=Path, default=DEFAULT_LM)
    parser.add_argument("--sweeps", type=int, default=5, help="hotwords whose effect on all of dev is measured")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    model, info, frame_seconds = acoustic_model(args.checkpoint)
    lm = LanguageModel.load(args.lm)
    results: dict = {"checkpoint": str(args.checkpoint), "lm": str(args.lm), "decoding": lm.defaults.__dict__}
    for split in args.splits:
        log_probs, references = read(args.data / split, model, info)
        results[split] = compare(log_probs, references, frame_seconds, lm)
        print(table(f"{split} ({len(references)} utterances)", results[split]))
        greedy, best = results[split]["greedy"], results[split]["beam + LM"]
        print(f"WER {100 * (1 - best['wer'] / greedy['wer']):.1f}% lower than greedy (relative)")
        if split == "dev":
            results["hotwords"] = hotwords(log_probs, references, frame_seconds, lm, args.sweeps)
            h = results["hotwords"]
            print(f"\nhotwords: {h['recognised']} of {h['candidates']} unseen, missed words recognised when boosted")
            for e in h["rest_of_dev"]:
                print(f"  {e['word']}: rest of dev WER {100 * e['wer']:.2f}% -> {100 * e['wer_boosted']:.2f}%")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

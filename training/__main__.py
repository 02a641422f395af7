"""``python -m training SUBCOMMAND``: build a corpus, train a model, evaluate it, build and tune its LM."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

from asr import checkpoint, precision
from asr.beam import Beam, BeamDecoder
from asr.decoding import greedy_decode
from asr.language_model import DecodingDefaults, LanguageModel
from asr.model import AcousticModel, ModelConfig
from asr.text import normalise
from training import corpus, distributed, evaluation, lm, sentences, texts, tuning
from training.augment import SPEC_AUGMENT
from training.data import LIBRISPEECH_SUBSETS, FeatureDataset, load, read_transcripts
from training.grow import starts
from training.metrics import cer, wer
from training.plots import reliability_plot, training_curves, tuning_plot
from training.train import PRESETS, TrainConfig, train
from training.voices import ENGINES


def _sentences_of(folders: list[Path]) -> frozenset[str]:
    """Every transcript sentence under these LibriSpeech-layout folders: what a build must leave out."""
    return frozenset(text for folder in folders for _, _, text in read_transcripts(folder))


def _exclude_argument(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--exclude", nargs="*", type=Path, default=[], metavar="FOLDER", help=help)


def _corpus(args: argparse.Namespace) -> None:
    if args.replay:
        print(f"wrote {corpus.write(args.out, corpus.replayed(args.replay), args.jobs)}")
        return
    manifest = corpus.build(
        args.out,
        args.train,
        args.dev,
        args.test,
        seed=args.seed,
        jobs=args.jobs,
        text_source=args.text,
        held_out=tuple(args.hold_out),
        engines=tuple(args.engines) if args.engines else None,
        config=corpus.NO_EFFECTS if args.no_effects else corpus.AugmentConfig(),
        exclude=_sentences_of(args.exclude),
        blends=args.blends,
        accents=args.accents,
        quiet=args.quiet,
    )
    print(f"wrote {manifest}")


def _train(args: argparse.Namespace) -> None:
    base = checkpoint.read_info(args.init).model_config if args.init else PRESETS[args.preset or "default"]
    model = dataclasses.replace(base, **dict(args.set))
    if args.init is not None and (args.preset or not starts(base, model)):
        raise SystemExit(
            "--init takes the model's shape from its checkpoint: drop --preset, and --set but for "
            "dropout, running_mean_frames and a larger rnn_hidden (which widens the GRUs)"
        )
    config = TrainConfig(
        model=model,
        epochs=args.epochs,
        max_frames=args.max_frames,
        lr=args.lr,
        spec_augment=SPEC_AUGMENT[args.spec_augment],
        seed=args.seed,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        precision=args.precision,
    )
    origin = f"from {args.init}" if args.init else f"{args.preset or 'default'} preset"
    print(f"model: {AcousticModel(model).num_parameters():,} parameters ({origin})")
    train_sources, dev_sources = args.train, args.dev
    if args.data is not None:
        train_sources = train_sources or [args.data / "train"]
        dev_sources = dev_sources or ([args.data / "dev"] if (args.data / "dev").is_dir() else [])
    if not train_sources:
        raise SystemExit("give --data CORPUS or --train SOURCE...")
    sources = {"librispeech_root": args.librispeech, "download": args.download}
    train_set = FeatureDataset(load(train_sources, config.features, **sources), config.features)
    dev_set = FeatureDataset(load(dev_sources, config.features, **sources), config.features) if dev_sources else None
    provenance = {
        "data": [str(s) for s in train_sources],
        "dev_data": [str(s) for s in dev_sources or []],
        "preset": None if args.init else args.preset or "default",
        "init": str(args.init) if args.init else None,
        "train_utterances": len(train_set),
        "train_hours": round(sum(r.frames for r in train_set.recordings) * config.features.frame_seconds / 3600, 3),
        "dev_utterances": len(dev_set or []),
    }
    provenance["command"] = "python -m training " + " ".join(sys.argv[1:])
    stop = args.stop_after_minutes * 60 if args.stop_after_minutes else None
    world, _ = distributed.join(args.device)
    provenance["processes"] = world.size
    try:
        _, result = train(
            config,
            train_set,
            dev_set,
            out=args.out,
            provenance=provenance,
            resume=args.resume,
            stop_after_seconds=stop,
            stop_after_steps=args.stop_after_steps,
            workers=args.workers,
            init=args.init,
        )
    finally:
        distributed.leave()
    if not world.is_main:
        return
    if not result.finished:
        print(f"stopped at step {result.steps}; continue with the same command plus --resume")
        return
    curves = args.out.with_suffix(".png")
    training_curves(result.history, curves)
    print(f"{result.steps} steps in {result.seconds:.0f} s; wrote {args.out} and {curves}")


def _evaluate(args: argparse.Namespace) -> None:
    model, info = checkpoint.load(args.checkpoint, args.device)
    device = next(model.parameters()).device
    numerics = precision.resolve(args.precision, device)
    model = precision.prepare(model, numerics)
    decoder = BeamDecoder(LanguageModel.load(args.lm)) if args.lm else None
    with precision.autocast(numerics, device):
        rows = evaluation.score(
            model,
            info.feature_config,
            *evaluation.splits_of(args.data, args.splits),
            workers=args.workers,
            decoder=decoder,
        )
    summary = evaluation.report(rows)
    print(json.dumps(summary, indent=2))
    if args.report:
        args.report.write_text(
            json.dumps(
                {"checkpoint": str(args.checkpoint), "precision": numerics, "summary": summary, "utterances": rows},
                indent=1,
            )
        )


def _lm_text(sources: list[str]) -> list[str]:
    """Sentences from packaged sources (:data:`training.texts.SOURCES`), ``commands`` (the grammar's sentences,
    up to 100,000) or text files."""
    found: list[str] = []
    for source in sources:
        if source in texts.SOURCES:
            found += texts.source(source)
        elif source == "commands":
            found += sentences.sentences(100_000, 0)
        else:
            found += [normalise(line) for line in Path(source).read_text(encoding="utf-8").splitlines()]
    return [s for s in found if s]


def _lm(args: argparse.Namespace) -> None:
    held_out = _sentences_of(args.exclude)
    arpa = args.out.with_suffix(".arpa")
    about: dict = {"provenance": {"command": "python -m training " + " ".join(sys.argv[1:])}}
    if args.arpa:
        model = lm.read_arpa(args.arpa)
        arpa = args.arpa
    else:
        text = [s for s in _lm_text(args.text) if s not in held_out]
        listed = args.words.read_text(encoding="utf-8").split() if args.words else []
        words = [w for entry in listed for w in normalise(entry).split()]
        model = lm.estimate(tqdm(text, desc="counting", unit="sentence"), args.order, args.prune, words)
        lm.write_arpa(model, arpa)
        about["provenance"] |= {"sentences": len(text), "words": sum(len(s.split()) for s in text)}
        about["provenance"]["excluded_sentences"] = len(held_out)
    about |= {"order": model.order, "ngrams": [len(level) for level in model.log_probs]}
    if held_out:
        about["held_out"] = lm.held_out_report(model, held_out)
    LanguageModel(arpa, tuple(model.vocabulary), about=about).save(args.out)
    print(json.dumps(about, indent=1))
    print(f"wrote {arpa} ({arpa.stat().st_size / 1e6:.1f} MB) and {args.out}")


def _tune_lm(args: argparse.Namespace) -> None:
    model, info = checkpoint.load(args.checkpoint, args.device)
    bundle = LanguageModel.load(args.lm)
    folder = args.data / args.split if (args.data / args.split).is_dir() else args.data
    dataset = FeatureDataset(load([folder], info.feature_config), info.feature_config)
    frame_seconds = model.config.frame_seconds(info.feature_config)
    log_probs = evaluation.log_probs(model, dataset, workers=args.workers)
    references = [r.text for r in dataset.recordings]
    decoder = BeamDecoder(bundle)
    greedy = [greedy_decode(lp, frame_seconds).text for lp in log_probs]
    grid = tuning.grid_search(decoder, log_probs, references, frame_seconds, args.alpha, args.beta, args.beam)
    best = tuning.best_point(grid)
    defaults = dataclasses.replace(bundle.defaults, alpha=best.alpha, beta=best.beta, beam_size=args.beam)
    chosen = Beam(beam_size=args.beam, alpha=best.alpha, beta=best.beta)
    evidence, outcomes = tuning.word_evidence(decoder, log_probs, references, frame_seconds, chosen)
    calibration = tuning.fit_calibration(evidence, outcomes)
    calibrated = np.array([calibration(tuple(e)) for e in evidence])
    about = bundle.about | {
        "tuning": {
            "checkpoint": str(args.checkpoint),
            "data": str(folder),
            "utterances": len(dataset),
            "greedy": {"cer": round(cer(references, greedy), 4), "wer": round(wer(references, greedy), 4)},
            "best": dataclasses.asdict(best),
            "grid": [dataclasses.asdict(p) for p in grid],
            "calibration": tuning.calibration_report(evidence[:, 0], calibrated, outcomes),
        }
    }
    dataclasses.replace(bundle, defaults=defaults, calibration=calibration, about=about).save(args.lm)
    plots = args.plots or args.lm.parent
    stem = args.lm.name.removesuffix(".json")
    tuning_plot(grid, plots / f"{stem}-tuning.png")
    reliability_plot(
        {"n-best share": evidence[:, 0], "calibrated": calibrated}, outcomes, plots / f"{stem}-reliability.png"
    )
    print(json.dumps(about["tuning"] | {"grid": None}, indent=1))
    print(f"alpha={best.alpha} beta={best.beta} stored in {args.lm}; plots in {plots}")


def _override(text: str) -> tuple[str, int | float]:
    """``name=value`` for one ModelConfig field."""
    name, _, value = text.partition("=")
    known = [f.name for f in dataclasses.fields(ModelConfig)]
    if name not in known or not value:
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE with FIELD one of {', '.join(known)}")
    return name, float(value) if name == "dropout" else int(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="SUBCOMMAND")

    p = commands.add_parser("corpus", help="synthesise a corpus in the LibriSpeech layout with offline TTS")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--train", type=int, default=4000, help="train utterances (default %(default)s)")
    p.add_argument("--dev", type=int, default=200)
    p.add_argument("--test", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=os.cpu_count())
    p.add_argument(
        "--text",
        default="fortunes",
        help=f"sentences from packages ({', '.join(texts.SOURCES)}; several joined by +), "
        "or the vertical slice's command grammar (commands)",
    )
    p.add_argument(
        "--hold-out",
        nargs="+",
        default=list(corpus.DEFAULT_HELD_OUT),
        metavar="VOICE",
        help="voices (ENGINE:NAME) heard only in the test split (default: %(default)s)",
    )
    p.add_argument(
        "--engines",
        nargs="+",
        choices=ENGINES,
        help="speak with these engines' voices only (default: every installed engine)",
    )
    p.add_argument("--no-effects", action="store_true", help="clean speech: prosody varies, no room, noise or codec")
    p.add_argument(
        "--blends",
        type=int,
        default=0,
        help="more Kokoro training blends per sex than the catalogue's (more speakers; 0 rebuilds earlier corpora)",
    )
    p.add_argument(
        "--accents",
        type=int,
        default=0,
        help="the other languages' Kokoro voices speaking English, and this many blends per sex of them with the "
        "English training voices",
    )
    p.add_argument(
        "--quiet",
        type=int,
        default=0,
        help="train clips with no speech (silence, hiss, hum, music), transcribed as nothing, beside --train",
    )
    _exclude_argument(
        p, "LibriSpeech-layout folders (other corpora's dev and test) whose sentences train must not speak"
    )
    p.add_argument(
        "--replay",
        type=Path,
        metavar="MANIFEST",
        help="synthesise exactly the utterances of this manifest.jsonl instead (a pinned evaluation set, "
        "training/evaluation_sets/); the options above are then ignored",
    )
    p.set_defaults(run=_corpus)

    p = commands.add_parser("train", help="train a model on DATA/train (scored on DATA/dev) and write a checkpoint")
    p.add_argument("--data", type=Path, help="a corpus folder with train/ (and dev/) in the LibriSpeech layout")
    p.add_argument(
        "--train",
        nargs="+",
        metavar="SOURCE",
        help="training data instead of DATA/train: LibriSpeech-layout folders or LibriSpeech subsets "
        f"({', '.join(LIBRISPEECH_SUBSETS)})",
    )
    p.add_argument("--dev", nargs="+", metavar="SOURCE", help="dev data instead of DATA/dev, as for --train")
    p.add_argument(
        "--librispeech", type=Path, help="the folder holding (or to receive) LibriSpeech/SUBSET for subset names"
    )
    p.add_argument("--download", action="store_true", help="fetch missing LibriSpeech subsets from openslr.org")
    p.add_argument("--workers", type=int, help="processes preparing batches (default: up to 4)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write (.safetensors)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="model size (default: default)")
    p.add_argument(
        "--init",
        type=Path,
        metavar="CHECKPOINT",
        help="start from this checkpoint's weights and shape, with a new schedule (fine-tuning, or a second sitting)",
    )
    p.add_argument(
        "--set",
        type=_override,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one model config field of the preset (of the --init checkpoint: dropout, "
        "running_mean_frames, or a larger rnn_hidden, which widens its GRUs), e.g. --set rnn_hidden=384",
    )
    defaults = TrainConfig()
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--max-frames", type=int, default=defaults.max_frames, help="padded frames per batch")
    p.add_argument("--lr", type=float, default=defaults.lr, help="peak learning rate")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument(
        "--spec-augment", choices=list(SPEC_AUGMENT), default="mild", help="augmentation policy (default: %(default)s)"
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=defaults.checkpoint_every, help="steps between resume states"
    )
    p.add_argument(
        "--eval-every", type=int, help="steps between evaluations on dev (default: at the end of each epoch)"
    )
    p.add_argument(
        "--precision",
        choices=tuple(precision.AUTOCAST),
        default=defaults.precision,
        help="autocast precision: bf16 on recent GPUs and AVX-512-BF16 CPUs, fp16 on older GPUs",
    )
    p.add_argument("--resume", action="store_true", help="continue exactly from OUT's resume state (OUT.state.pt)")
    p.add_argument("--stop-after-minutes", type=float, help="save a resume state and stop after this long")
    p.add_argument("--stop-after-steps", type=int, help="save a resume state and stop after this many steps")
    p.set_defaults(run=_train)

    p = commands.add_parser("evaluate", help="greedy CER and WER of a checkpoint, per split and per voice")
    p.add_argument("checkpoint", type=Path)
    p.add_argument(
        "data",
        type=Path,
        help="a corpus root with split folders, one LibriSpeech-layout folder, or a corpus manifest.jsonl",
    )
    p.add_argument("--splits", nargs="+", default=["dev", "test"], help="split folders to score (default: %(default)s)")
    p.add_argument("--report", type=Path, help="write every utterance's reference, hypothesis and errors here (JSON)")
    p.add_argument("--lm", type=Path, help="decode with beam search and this LM bundle (.json) instead of greedily")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, help="processes preparing batches (default: up to 4)")
    p.add_argument(
        "--precision",
        choices=precision.PRECISIONS,
        default="fp32",
        help="numerics of the forward pass (default: %(default)s, as every MODEL_CARD figure; auto takes the "
        "service's numerics, int8 on a CPU)",
    )
    p.set_defaults(run=_evaluate)

    p = commands.add_parser("lm", help="estimate a word n-gram LM (ARPA, Kneser-Ney) and write its bundle")
    p.add_argument("--out", type=Path, required=True, help="the bundle's JSON; the ARPA file goes next to it")
    p.add_argument(
        "--text",
        nargs="+",
        default=["fortunes"],
        metavar="SOURCE",
        help=f"{', '.join(texts.SOURCES)}, commands, or text files of one sentence per line (default: %(default)s)",
    )
    _exclude_argument(p, "LibriSpeech-layout folders (dev, test) whose sentences must not be in the LM's text")
    p.add_argument("--words", type=Path, help="more vocabulary, one word per line (a dictionary's word list)")
    p.add_argument("--order", type=int, default=3)
    p.add_argument("--prune", type=int, default=1, help="drop highest-order n-grams seen this often or less")
    p.add_argument("--arpa", type=Path, help="bundle this ARPA file (from KenLM's lmplz, say) instead of estimating")
    p.set_defaults(run=_lm)

    p = commands.add_parser("tune-lm", help="grid-search the LM weights on a dev split, fit word confidences")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("lm", type=Path, help="the LM bundle (.json) to tune; the chosen values are written into it")
    p.add_argument("--data", type=Path, required=True, help="a corpus root, or one LibriSpeech-layout folder")
    p.add_argument("--split", default="dev")
    p.add_argument("--alpha", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0, 2.5, 3.0], help="LM weights")
    p.add_argument("--beta", type=float, nargs="+", default=[-1.0, 0.0, 1.0, 2.0, 3.0], help="word scores")
    p.add_argument("--beam", type=int, default=DecodingDefaults().beam_size)
    p.add_argument("--plots", type=Path, help="folder for the tuning and reliability PNGs (default: the LM's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, help="processes preparing batches (default: up to 4)")
    p.set_defaults(run=_tune_lm)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()

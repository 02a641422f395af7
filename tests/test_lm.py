"""The n-gram estimator: exact Kneser-Ney values on a corpus small enough to work by hand, distributions
that sum to one, and ARPA files that KenLM reads to the same scores."""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
from collections import Counter

import pytest
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary

from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.language_model import LanguageModel
from tests.support.speech import speak, write_chapter
from training import sentences
from training.lm import END, START, UNKNOWN, estimate, perplexity, read_arpa, write_arpa
from training.plots import tuning_plot
from training.tuning import GridPoint

SENTENCES = ["a b", "a c"]


def test_kneser_ney_values_worked_by_hand():
    """Bigrams: D = 0.5 / 1.0 (too few counts to estimate them). Continuation counts of the unigrams:
    a 1, b 1, c 1, </s> 2 (total 5), so gamma() = (0.5 * 3 + 1.0 * 1) / 5 = 0.5 and each of the five
    vocabulary entries (with <unk>) gets 0.5 / 5 = 0.1 from the uniform share."""
    model = estimate(SENTENCES, order=2)
    assert 10 ** model.log10_prob("a", ()) == pytest.approx(0.5 / 5 + 0.1)
    assert 10 ** model.log10_prob(END, ()) == pytest.approx(1.0 / 5 + 0.1)
    assert 10 ** model.log10_prob(UNKNOWN, ()) == pytest.approx(0.1)
    # after "a": b and c once each, so (1 - 0.5) / 2 + gamma(a) = 0.5 * 2 / 2 times p(b) = 0.2
    assert 10 ** model.log10_prob("b", ("a",)) == pytest.approx(0.25 + 0.5 * 0.2)
    # "b" never followed "b": the backoff weight times the unigram
    assert 10 ** model.log10_prob("b", ("b",)) == pytest.approx(10 ** model.backoffs[("b",)] * 0.2)


def _sentences(count: int, seed: int) -> list[str]:
    """Sentences with structure for an n-gram model to find: the command grammar's."""
    return sentences.sentences(count, seed)


@pytest.mark.parametrize(("order", "prune", "extra"), [(2, 0, ()), (3, 0, ()), (3, 1, ("zebra", "quilt")), (4, 1, ())])
def test_every_context_is_a_distribution(order, prune, extra):
    model = estimate(_sentences(300, 0), order, prune, extra)
    outcomes = [w for (w,) in model.log_probs[0] if w != START]
    assert set(extra) <= set(model.vocabulary)
    for context in [(START,), ("the",), ("turn", "on"), (START, "set"), ("zebra", "the", "red"), ("quilt",)]:
        assert sum(10 ** model.log10_prob(w, context) for w in outcomes) == pytest.approx(1.0, abs=1e-9)


def test_pruning_shrinks_the_model_and_held_out_perplexity_stays_close():
    text, held_out = _sentences(2000, 1), _sentences(200, 2)
    full, pruned = estimate(text, 3), estimate(text, 3, prune=1)
    trigrams = Counter(g for s in text for g in zip(*(((START, *s.split(), END))[i:] for i in range(3)), strict=False))
    assert set(pruned.log_probs[2]) == {g for g, n in trigrams.items() if n > 1} < set(full.log_probs[2])
    assert pruned.log_probs[1].keys() == full.log_probs[1].keys()
    assert perplexity(pruned, held_out) == pytest.approx(perplexity(full, held_out), rel=0.1)
    assert perplexity(full, held_out) < perplexity(estimate(text, 1), held_out)


def test_arpa_round_trip_and_kenlm_agree(tmp_path):
    model = estimate(_sentences(500, 3), 3, 1, ["zebra"])
    path = tmp_path / "lm.arpa"
    write_arpa(model, path)
    again = read_arpa(path)
    assert again.order == 3 and again.vocabulary == model.vocabulary
    dictionary = Dictionary()
    for word in (*model.vocabulary, UNKNOWN):
        dictionary.add_entry(word)
    kenlm = KenLM(str(path), dictionary)
    for sentence in ["turn on the kitchen lights", "zebra call the red box", "the the the"]:
        state, total = kenlm.start(False), 0.0
        for word in sentence.split():
            state, score = kenlm.score(state, dictionary.get_index(word))
            total += score
        total += kenlm.finish(state)[1]
        words = [*sentence.split(), END]
        ours = sum(again.log10_prob(w, (START, *words[:i])) for i, w in enumerate(words))
        assert total == pytest.approx(ours, abs=1e-4)
        assert math.isfinite(total)


def test_nothing_to_count_is_refused():
    with pytest.raises(ValueError, match="no sentences"):
        estimate(["", "  "])


def test_lm_tune_lm_and_evaluate_commands_on_a_tiny_corpus(tmp_path):
    """``python -m training lm``, ``tune-lm`` and ``evaluate --lm``, chained as the README shows them."""
    run = functools.partial(subprocess.run, check=True, capture_output=True, text=True)
    spoken = sentences.sentences(4, 7)
    text = [s for s in sentences.sentences(200, 8) if s not in spoken]
    (tmp_path / "text.txt").write_text("\n".join([*text, *spoken]) + "\n")
    dev = write_chapter(tmp_path / "corpus" / "dev", 1, 2, [(s, speak(s)) for s in spoken])
    bundle = tmp_path / "lm" / "commands.json"
    bundle.parent.mkdir()
    built = run(
        [sys.executable, "-m", "training", "lm", "--out", bundle, "--text", tmp_path / "text.txt"]
        + ["--exclude", dev, "--prune", "0"]
    )
    about = json.loads(bundle.read_text())
    assert about["provenance"]["sentences"] == len(text) and about["provenance"]["excluded_sentences"] == 4
    assert about["arpa"] == "commands.arpa" and "wrote" in built.stdout
    assert read_arpa(bundle.with_suffix(".arpa")).vocabulary == about["vocabulary"]
    trigrams = read_arpa(bundle.with_suffix(".arpa")).log_probs[2]
    held_out = {tuple(s.split()[i : i + 3]) for s in spoken for i in range(len(s.split()) - 2)}
    seen = {tuple(s.split()[i : i + 3]) for s in text for i in range(len(s.split()) - 2)}
    assert held_out - seen and not (held_out - seen) & trigrams.keys()  # no n-gram only dev has

    tune = [
        "tune-lm",
        DEFAULT_CHECKPOINT,
        bundle,
        "--data",
        tmp_path / "corpus",
        "--alpha",
        "0",
        "1",
        "--beta",
        "0",
        "1",
    ]
    run([sys.executable, "-m", "training", *map(str, tune), "--beam", "16", "--workers", "0", "--device", "cpu"])
    tuned = json.loads(bundle.read_text())
    grid = tuned["tuning"]["grid"]
    assert len(grid) == 4 and {(p["alpha"], p["beta"]) for p in grid} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    best = min(grid, key=lambda p: (p["wer"], p["cer"]))
    assert (tuned["decoding"]["alpha"], tuned["decoding"]["beta"]) == (best["alpha"], best["beta"])
    assert tuned["decoding"]["beam_size"] == 16 and len(tuned["calibration"]["weights"]) == 3
    assert best["wer"] <= tuned["tuning"]["greedy"]["wer"]
    for plot in ("commands-tuning.png", "commands-reliability.png"):
        assert (bundle.parent / plot).read_bytes().startswith(b"\x89PNG")
    report = json.loads(
        run(
            [sys.executable, "-m", "training", "evaluate", DEFAULT_CHECKPOINT, tmp_path / "corpus", "--splits", "dev"]
            + ["--lm", bundle, "--device", "cpu", "--workers", "0"]
        ).stdout
    )
    assert report["dev"]["wer"] == pytest.approx(best["wer"], abs=1e-4)  # the stored values decode as tuned
    assert LanguageModel.load(bundle).defaults.alpha == best["alpha"]


def test_a_plot_makes_the_folder_it_is_written_to(tmp_path):
    """``tune-lm --plots runs/new`` wrote the bundle, then failed on the missing folder."""
    path = tmp_path / "not" / "yet" / "lm-tuning.png"
    tuning_plot([GridPoint(a, b, 0.1, 0.2 + a - b / 10) for a in (0, 1) for b in (0, 1)], path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_an_existing_arpa_file_is_bundled_as_it_is(tmp_path):
    write_arpa(estimate(_sentences(100, 4), 2), tmp_path / "given.arpa")
    subprocess.run(
        [sys.executable, "-m", "training", "lm", "--arpa", tmp_path / "given.arpa", "--out", tmp_path / "b.json"],
        check=True,
        capture_output=True,
    )
    bundle = LanguageModel.load(tmp_path / "b.json")
    assert bundle.arpa == tmp_path / "given.arpa" and bundle.about["order"] == 2
    assert list(bundle.vocabulary) == read_arpa(tmp_path / "given.arpa").vocabulary

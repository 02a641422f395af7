"""The evaluation-set benchmark: its sets, its scoring on the real model, and the docs' tables it keeps current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asr.beam import BeamDecoder
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.language_model import DEFAULT_LM, DecodingDefaults, LanguageModel
from bench import accuracy
from bench.decoding import acoustic_model
from bench.docs import digest
from bench.evaluation_sets import BEGIN, END, REAL_DEV, SETS, docs_block, measure
from tests.support.speech import speak, write_chapter
from training.evaluation import EVALUATION_SETS

DOCS = [Path(__file__).parents[1] / name for name in ("README.md", "MODEL_CARD.md")]


def test_every_pinned_set_is_measured_from_the_folder_its_replay_command_builds():
    pinned = sorted(path.stem for path in EVALUATION_SETS.glob("*.jsonl"))
    assert sorted(row.name for row in SETS if row.name != REAL_DEV) == pinned
    [joe] = [row for row in SETS if row.name == "joe-dev"]
    assert joe.folder(Path("corpora"), Path("/r")) == Path("corpora/joe/dev")
    assert [row.folder(Path("corpora"), Path("/r")) for row in SETS if row.name == REAL_DEV] == [Path("/r")]


def test_the_bundle_reads_a_small_set_greedily_and_better_with_the_lm(tmp_path):
    sentences = ["the weather is nice today", "please close the kitchen door", "what time does the train leave"]
    folder = write_chapter(tmp_path / "dev", 7, 1, [(s, speak(s)) for s in sentences])
    model, info, frame_seconds = acoustic_model(DEFAULT_CHECKPOINT)
    result = measure(folder, model, info, frame_seconds, BeamDecoder(LanguageModel.load(DEFAULT_LM)))
    assert result["utterances"] == 3 and 0.001 <= result["hours"] < 0.01
    assert result["lm"]["wer"] <= 0.2 and result["lm"]["wer"] <= result["greedy"]["wer"]
    assert result["greedy"]["cer"] < 0.2


def _results(lm_wer: float) -> dict:
    rates = {"cer": 0.1, "wer": lm_wer}
    return {row.name: {"utterances": 10, "hours": 0.5, "greedy": {"cer": 0.2, "wer": 0.5}, "lm": rates} for row in SETS}


def test_the_table_judges_each_target_and_names_what_it_measured():
    defaults = DecodingDefaults(alpha=1.5, beta=-1.0)
    block = docs_block(_results(0.18), DEFAULT_CHECKPOINT, DEFAULT_LM, defaults, "python -m bench.evaluation_sets")
    assert block.startswith(BEGIN) and block.endswith(END)
    assert "| WER ≤ 20.0%: met |" in block and "| WER ≤ 15.0%: **missed** |" in block  # Kokoro, joe
    assert "| CER ≤ 21.1%: met |" in block and "**10.0% / 18.0%**" in block
    assert f"sha256 {digest(DEFAULT_CHECKPOINT)}" in block and f"sha256 {digest(DEFAULT_LM)}" in block


def test_the_peers_block_sets_each_recogniser_beside_ours_on_the_served_bundle():
    figures = zip(accuracy.RECOGNISERS, [(0.46, 0.23), (0.447, 0.26), (0.068, 0.029)], strict=True)
    results = {"asr-realdev": {r: {"utterances": 29, "wer": w, "cer": c} for r, (w, c) in figures}}
    block = accuracy.docs_block(results, "python -m bench.accuracy /r --docs README.md")
    assert "| `asr-realdev` | 29 | 46.0% / 23.0% | 44.7% / 26.0% | 6.8% / 2.9% |" in block
    assert "measured by `python -m bench.accuracy /r --docs README.md`." in block
    assert f"sha256 {digest(DEFAULT_CHECKPOINT)}" in block and f"sha256 {digest(DEFAULT_LM)}" in block


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.name)
@pytest.mark.parametrize(("begin", "end"), [(BEGIN, END), (accuracy.BEGIN, accuracy.END)], ids=["sets", "peers"])
def test_the_docs_figures_were_measured_on_the_bundled_model_and_lm(doc, begin, end):
    """The bundled model or LM changed without `python -m bench.evaluation_sets --docs README.md MODEL_CARD.md` and
    `python -m bench.accuracy ... --docs README.md MODEL_CARD.md` being run."""
    block = doc.read_text().split(begin)[1].split(end)[0]
    assert re.findall(r"\(sha256 ([0-9a-f]{12})", block) == [digest(DEFAULT_CHECKPOINT), digest(DEFAULT_LM)]

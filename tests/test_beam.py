"""Beam search with an n-gram LM on hand-built posteriors, where the LM or a hotword must change the answer."""

from __future__ import annotations

import os
from dataclasses import replace

import numpy as np
import pytest
import torch

from asr.beam import MAX_HOTWORD_LETTERS, Beam, BeamDecoder, kept_frames, restored
from asr.decoding import greedy_decode
from asr.language_model import DEFAULT_LM, Calibration, LanguageModel
from asr.text import ALPHABET
from asr.transcript import Transcript, Word
from tests.support.servers import resident_mb
from training.lm import estimate, write_arpa
from training.tuning import expected_calibration_error, fit_calibration, word_outcomes

FRAME = 0.02


def posteriors(frames: list[str | dict[str, float]]) -> torch.Tensor:
    """One frame per entry: a symbol (``_`` is blank) at 0.9, or symbols with their probabilities;
    whatever is left is shared by the other classes."""
    rows = []
    for frame in frames:
        chosen = {frame: 0.9} if isinstance(frame, str) else frame
        rest = (1 - sum(chosen.values())) / (len(ALPHABET) + 1 - len(chosen))
        row = torch.full((len(ALPHABET) + 1,), rest)
        for symbol, p in chosen.items():
            row[0 if symbol == "_" else ALPHABET.index(symbol) + 1] = p
        rows.append(row)
    return torch.stack(rows).log()


def spoken(text: str) -> list[str]:
    """Each letter for two frames with a blank after, as a CTC model's peaky output looks."""
    return [f for char in text for f in (char, char, "_")]


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> LanguageModel:
    text = ["the cat sat on the mat"] * 20 + ["the dog sat on the log"] * 20 + ["a cat ran"] * 5
    folder = tmp_path_factory.mktemp("lm")
    model = estimate(text, order=3, vocabulary=["kat", "rob", "bob"])
    write_arpa(model, folder / "lm.arpa")
    return LanguageModel(folder / "lm.arpa", tuple(model.vocabulary))


def test_the_language_model_overrules_a_slightly_wrong_letter(lm):
    """The acoustics lean to "kat" (k 0.5, c 0.4); greedy and the lexicon alone say "kat", the LM "cat"."""
    frames = [*spoken("the "), {"k": 0.5, "c": 0.4}, "_", *spoken("at sat")]
    lp = posteriors(frames)
    assert greedy_decode(lp, FRAME).text == "the kat sat"
    assert BeamDecoder(lm).decode(lp, FRAME, options=Beam(alpha=0.0, beta=0.0))[0].text == "the kat sat"
    assert BeamDecoder(lm).decode(lp, FRAME, options=Beam(alpha=1.0, beta=1.0))[0].text == "the cat sat"


def test_words_keep_to_the_lexicon_and_separate_as_the_model_does():
    decoder = BeamDecoder(None, vocabulary=("in", "inn", "the"))
    assert decoder.decode(posteriors(list("inn")), FRAME)[0].text == "in"  # CTC: no blank, one n
    assert decoder.decode(posteriors(list("in_n")), FRAME)[0].text == "inn"
    assert decoder.decode(posteriors(list("  the  in ")), FRAME)[0].text == "the in"
    assert decoder.decode(torch.zeros(0, len(ALPHABET) + 1), FRAME)[0] == Transcript("")


def test_the_lm_puts_no_word_where_the_model_heard_no_letter(lm):
    """Near-silence: every frame's likeliest symbol is blank or space. Scored with the LM, "a" beats the
    empty sentence even at 5% per frame; the transcript stays empty, yet one frame where "a" wins reads "a"."""
    for share in (0.05, 0.3):
        quiet = [{"_": 0.9 - share, "a": share}] * 40
        for frames in (quiet, [*quiet[:20], " ", *quiet[20:]]):
            found = BeamDecoder(lm).decode(posteriors(frames), FRAME, options=Beam(alpha=1.0, alternatives=3))
            assert found == [Transcript("")]
    heard = [*quiet[:20], {"a": 0.6, "_": 0.3}, *quiet[20:]]
    assert BeamDecoder(lm).decode(posteriors(heard), FRAME, options=Beam(alpha=1.0))[0].text == "a"


def test_words_end_at_a_long_pause_even_without_a_space():
    decoder = BeamDecoder(None, vocabulary=("door", "turn", "doorturn"))
    apart = posteriors([*"d_o_o_r", *["_"] * 60, *"turn"])
    assert decoder.decode(apart, FRAME)[0].text == "door turn"
    assert decoder.decode(posteriors([*"d_o_o_r", *["_"] * 30, *"turn"]), FRAME)[0].text == "doorturn"


def test_sure_blanks_are_skipped_without_changing_text_or_times(lm):
    """Of each run of frames whose blank exceeds the threshold only the first reaches the search, so a doubled
    letter stays doubled; words and times come out as with every frame searched, confidences within 0.1%."""
    sure = {"_": 0.9999}
    frames = [sure] * 5 + [*"in", sure, sure, sure, *"n", sure, *spoken(" the cat")] + [sure] * 30 + spoken(" sat")
    lp = posteriors(frames)
    kept = kept_frames(lp, 0.999)
    assert kept.tolist()[:5] == [0, 5, 6, 7, 10] and len(kept) == len(frames) - 4 - 2 - 29
    decoder = BeamDecoder(None, vocabulary=("in", "inn", "the", "cat", "sat"))
    every = replace(decoder.defaults, blank_skip=1.0)
    [skipping] = decoder.decode(lp, FRAME)
    decoder.defaults = every
    [searching_all] = decoder.decode(lp, FRAME)
    assert skipping.text == searching_all.text == "inn the cat sat"
    for skipped, full in zip(skipping.words, searching_all.words, strict=True):
        assert (skipped.start, skipped.end) == (full.start, full.end)
        assert skipped.confidence == pytest.approx(full.confidence, abs=1e-3)


def test_a_letter_held_across_skipped_frames_stays_one_letter():
    path, kept = np.array([3, 3, 0]), np.array([0, 4, 5])
    assert restored(path, kept, 8).tolist() == [3, 3, 3, 3, 3, 0, 0, 0]
    assert restored(np.array([3, 0, 3]), np.array([0, 2, 6]), 7).tolist() == [3, 0, 0, 0, 0, 0, 3]


def test_a_hotword_wins_when_boosted_even_outside_the_vocabulary(lm):
    decoder = BeamDecoder(lm)
    lp = posteriors([*spoken("the "), {"r": 0.5, "b": 0.4}, "_", *spoken("ob sat")])
    assert decoder.decode(lp, FRAME)[0].text == "the rob sat"
    assert decoder.decode(lp, FRAME, options=Beam(hotwords=("bob",)))[0].text == "the bob sat"
    unknown = posteriors(spoken("the zorx sat"))
    assert "zorx" not in decoder.decode(unknown, FRAME)[0].text
    assert decoder.decode(unknown, FRAME, options=Beam(hotwords=("zorx",)))[0].text == "the zorx sat"
    assert "zorx" not in decoder.decode(unknown, FRAME)[0].text  # a request's hotwords do not stay


def test_a_grammar_keeps_to_its_phrases_in_their_order_and_one_after_another(lm):
    """The acoustics say "turn of the lamp": the grammar's nearest phrase wins, word order and all."""
    decoder = BeamDecoder(lm)
    grammar = Beam(grammar=("turn on the light", "turn off the lamp", "stop"))
    lp = posteriors(spoken("turn of the lamp"))
    assert decoder.decode(lp, FRAME, options=grammar)[0].text == "turn off the lamp"
    assert decoder.decode(posteriors(spoken("turn on the lamp")), FRAME, options=grammar)[0].text in (
        "turn on the light",
        "turn off the lamp",
    )  # no phrase mixes its words with another's
    assert decoder.decode(posteriors(spoken("stop stop")), FRAME, options=grammar)[0].text == "stop stop"
    assert decoder.decode(posteriors(spoken("the cat sat")), FRAME)[0].text == "the cat sat"  # the LM again after
    silence = posteriors(["_"] * 30)
    assert decoder.decode(silence, FRAME, options=grammar)[0].text == ""
    open_ended = Beam(grammar=("the cat", "[unk]"))
    assert decoder.decode(posteriors(spoken("the dog sat")), FRAME, options=open_ended)[0].text == "the [unk] [unk]"


def test_a_hotword_as_long_as_the_limit_is_spelled_and_a_longer_one_refused(lm):
    """flashlight builds its word tree by recursion: one hotword of 100,000 letters killed the process."""
    decoder, word = BeamDecoder(lm), "ab" * (MAX_HOTWORD_LETTERS // 2)
    lp = posteriors(spoken(f"the {word} sat"))
    assert decoder.decode(lp, FRAME, options=Beam(hotwords=(word,)))[0].text == f"the {word} sat"
    with pytest.raises(ValueError, match=f"at most {MAX_HOTWORD_LETTERS} letters, not {MAX_HOTWORD_LETTERS + 1}"):
        decoder.decode(lp, FRAME, options=Beam(hotwords=(word + "a",)))


def test_hotword_sets_cost_memory_once_not_each():
    """Each set of hotwords the lexicon lacks kept a copy of its 104k-word tree (about 100 MB) in an LRU of 32."""
    decoder = BeamDecoder(LanguageModel.load(DEFAULT_LM))
    lp = posteriors(spoken("the zorx sat"))
    decoder.decode(lp, FRAME, options=Beam(hotwords=("zorxa",)))
    before = resident_mb(os.getpid())
    for word in ("zorxb", "zorxc", "zorxd", "zorxe"):
        decoder.decode(lp, FRAME, options=Beam(hotwords=(word,)))
    assert resident_mb(os.getpid()) - before < 60


def test_alternatives_are_distinct_ordered_and_their_shares_sum_below_one(lm):
    lp = posteriors([*spoken("the "), {"k": 0.45, "c": 0.45}, "_", *spoken("at sat")])
    found = BeamDecoder(lm).decode(lp, FRAME, options=Beam(alternatives=4))
    assert 2 <= len(found) <= 4
    assert len({t.text for t in found}) == len(found)
    shares = [t.confidence for t in found]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-9
    assert {"the cat sat", "the kat sat"} <= {t.text for t in found}


def test_word_times_follow_the_decoded_path(lm):
    lp = posteriors(["_", "_", *spoken("the cat")])
    [word_the, word_cat] = BeamDecoder(lm).decode(lp, FRAME)[0].words
    assert (word_the.start, word_the.end) == pytest.approx((2 * FRAME, 10 * FRAME))
    assert (word_cat.start, word_cat.end) == pytest.approx((14 * FRAME, 22 * FRAME))
    assert [(w.word, w.start, w.end) for w in greedy_decode(lp, FRAME).words] == [
        (w.word, w.start, w.end) for w in (word_the, word_cat)
    ]


def test_a_sure_word_gets_more_confidence_than_a_doubtful_one(lm):
    lp = posteriors([*spoken("the "), {"k": 0.45, "c": 0.45}, "_", *spoken("at sat")])
    the, cat, sat = BeamDecoder(lm).decode(lp, FRAME)[0].words
    assert cat.confidence < min(the.confidence, sat.confidence)
    assert 0 < cat.confidence < 1


def test_word_outcomes_follow_the_minimum_edit_alignment():
    transcript = Transcript("the cat sat down", [Word(w, 0, 0, 1) for w in ["the", "cat", "sat", "down"]])
    assert word_outcomes("the bat sat", transcript) == [True, False, True, False]
    assert word_outcomes("", transcript) == [False] * 4


def test_calibration_is_fitted_to_outcomes_and_lowers_the_error():
    rng = np.random.default_rng(0)
    share = rng.uniform(0, 1, 4000)
    outcomes = (rng.uniform(0, 1, 4000) < share**3).astype(float)  # overconfident raw scores
    evidence = np.column_stack((share, np.log(share + 1e-3)))
    calibration = fit_calibration(evidence, outcomes)
    fitted = np.array([calibration(tuple(e)) for e in evidence])
    assert expected_calibration_error(fitted, outcomes) < 0.03 < expected_calibration_error(share, outcomes)
    assert Calibration()((0.7, -0.1)) == 0.7
    assert expected_calibration_error(np.array([0.9, 0.9]), np.array([1.0, 0.0])) == pytest.approx(0.4)

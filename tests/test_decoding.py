import math

import pytest
import torch

from asr.decoding import greedy_decode, greedy_decode_batch
from asr.text import ALPHABET
from asr.transcript import Word, segment


def posterior(frames: str, peak: float = 0.9) -> torch.Tensor:
    """Log-probabilities whose best path is ``frames`` ('_' is the blank), each frame's best at ``peak``."""
    log_probs = torch.full((len(frames), 29), math.log((1 - peak) / 28))
    for t, char in enumerate(frames):
        log_probs[t, 0 if char == "_" else ALPHABET.index(char) + 1] = math.log(peak)
    return log_probs


def test_collapses_repeats_and_drops_blanks():
    assert greedy_decode(posterior("hh_e_ll_lo"), 0.02).text == "hello"


def test_word_times_and_confidences():
    frames = "__cc_aat____  __dd_o_g_"
    lp = posterior(frames)
    lp[frames.index("o"), ALPHABET.index("o") + 1] = math.log(0.5)  # one unsure letter
    lp[frames.index("o"), ALPHABET.index("a") + 1] = math.log(0.4)
    transcript = greedy_decode(lp, frame_seconds=0.02)
    assert transcript.text == "cat dog"
    cat, dog = transcript.words
    assert (cat.word, cat.start, cat.end) == ("cat", pytest.approx(0.04), pytest.approx(0.16))
    assert (dog.word, dog.start, dog.end) == ("dog", pytest.approx(0.32), pytest.approx(0.44))
    assert cat.confidence == pytest.approx(0.9**3)
    assert dog.confidence == pytest.approx(0.9 * 0.5 * 0.9)


def test_each_letter_and_the_space_before_a_word_keep_their_log_posteriors():
    frames = "__cc_aat__ _ __dd_o_g_"
    lp = posterior(frames)
    lp[frames.index("o"), ALPHABET.index("o") + 1] = math.log(0.5)
    lp[frames.rindex(" "), ALPHABET.index(" ") + 1] = math.log(0.95)  # the better of the two spaces counts
    cat, dog = greedy_decode(lp, frame_seconds=0.02).words
    assert cat.letter_logprobs == pytest.approx([math.log(0.9)] * 3) and cat.space_logprob is None
    assert dog.letter_logprobs == pytest.approx([math.log(0.9), math.log(0.5), math.log(0.9)])
    assert dog.space_logprob == pytest.approx(math.log(0.95))
    pause = greedy_decode(posterior("d_o_o_r" + "_" * 50 + "t_u"), frame_seconds=0.02).words[1]
    assert pause.space_logprob == 0.0  # a long pause is a certain space


def test_a_pause_without_a_space_ends_a_word_and_a_short_gap_does_not():
    """50 frames of blank (1 s) between "door" and "turn" split them; 30 frames inside "turn" do not."""
    frames = "d_o_o_r" + "_" * 50 + "t_u" + "_" * 30 + "rn"
    transcript = greedy_decode(posterior(frames), frame_seconds=0.02)
    assert transcript.text == "door turn"
    door, turn = transcript.words
    assert (door.end, turn.start) == (pytest.approx(0.14), pytest.approx(1.14))
    assert greedy_decode(posterior("d_o_o_r" + "_" * 49 + "turn"), frame_seconds=0.02).text == "doorturn"


def test_word_ends_are_clipped_to_the_audio_duration():
    lp = posterior("_ab")
    assert greedy_decode(lp, 0.02).words[0].end == pytest.approx(0.06)
    assert greedy_decode(lp, 0.02, duration=0.05).words[0].end == pytest.approx(0.05)


def test_leading_trailing_and_double_spaces_make_no_empty_words():
    transcript = greedy_decode(posterior("  a_ _  _b  "), 0.02)
    assert transcript.text == "a b"
    assert [w.word for w in transcript.words] == ["a", "b"]


def test_empty_and_blank_input():
    assert greedy_decode(torch.zeros(0, 29), 0.02).text == ""
    assert greedy_decode(posterior("_____"), 0.02).words == []


def test_batch_respects_lengths():
    batch = torch.stack([posterior("hi___"), posterior("yo_ok")])
    texts = [t.text for t in greedy_decode_batch(batch, torch.tensor([2, 5]), 0.02)]
    assert texts == ["hi", "yook"]  # a blank between the two o keeps both


def _words(*spans: tuple[str, float, float]) -> list[Word]:
    return [Word(text, start, end, 0.9) for text, start, end in spans]


def test_segments_break_at_pauses():
    words = _words(("turn", 0.1, 0.3), ("it", 0.35, 0.5), ("off", 0.55, 0.8), ("now", 2.0, 2.3))
    first, second = segment(words, max_pause=0.8)
    assert (first.start, first.end, first.text, len(first.words)) == (0.1, 0.8, "turn it off", 3)
    assert (second.start, second.end, second.text) == (2.0, 2.3, "now")


def test_segments_never_exceed_their_length_limit():
    words = _words(*[(f"w{i}", i * 0.5, i * 0.5 + 0.4) for i in range(40)])
    segments = segment(words, max_seconds=5.0)
    assert [len(s.words) for s in segments] == [10, 10, 10, 10]
    assert all(s.end - s.start <= 5.0 for s in segments)
    assert [w for s in segments for w in s.words] == words


def test_no_words_no_segments():
    assert segment([]) == []

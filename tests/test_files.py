"""Files of any length: overlapping windows that tile the timeline, merged without gaps or doubles."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from itertools import pairwise

import pytest
import torch

from asr.audio import decode
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.features import prepare_waveform
from asr.transcriber import Transcriber
from asr.transcript import Transcript, Word
from service.batching import Batcher
from service.settings import Settings
from service.windowing import kept_words, transcribe_file, windows
from tests.support.speech import encode, speak
from training.metrics import cer


def _pieces(samples: int, rate: int, sizes=(1000, 4096, 333)):
    """A ramp (each sample its own index) in pieces of varying size, counting how many were taken."""
    taken = []
    start = 0
    while start < samples:
        size = sizes[len(taken) % len(sizes)]
        taken.append(size)
        yield torch.arange(start, min(start + size, samples), dtype=torch.float64)[None], rate
        start += size


def test_windows_tile_the_file_and_overlap_by_the_given_amount():
    rate, seconds, overlap = 1000, 10.0, 2.0
    cut = list(windows(_pieces(47_500, rate), seconds, overlap))
    assert [w.start for w in cut] == [0.0, 8.0, 16.0, 24.0, 32.0, 40.0]
    assert [w.waveform.shape[-1] for w in cut] == [10_000] * 5 + [7_500]
    for w in cut:  # every window holds exactly its own stretch of the file
        assert torch.equal(
            w.waveform[0],
            torch.arange(round(w.start * rate), round(w.start * rate) + w.waveform.shape[-1], dtype=torch.float64),
        )
    # The parts whose words each window keeps meet end to end and cover the whole timeline.
    assert cut[0].keep_from == 0 and cut[-1].keep_to == math.inf
    assert all(a.keep_to == b.start + overlap / 2 and b.keep_from == b.start + overlap / 4 for a, b in pairwise(cut))


def test_a_file_shorter_than_a_window_is_one_window():
    [only] = windows(_pieces(3_000, 1000), 10.0, 2.0)
    assert (only.start, only.keep_from, only.keep_to, only.waveform.shape[-1]) == (0.0, 0.0, math.inf, 3_000)


def test_windows_are_cut_while_the_file_is_still_being_read():
    consumed = []

    def pieces():
        for i in range(100):
            consumed.append(i)
            yield torch.zeros(1, 1000), 1000

    first = next(windows(pieces(), 10.0, 2.0))
    assert first.start == 0 and len(consumed) == 11  # one piece past the window, not the whole file


def test_a_window_keeps_the_words_of_its_own_part_after_those_kept_before():
    window = next(windows(iter([(torch.zeros(1, 30_000), 1000)]), 10.0, 2.0))
    later = next(w for w in windows(iter([(torch.zeros(1, 30_000), 1000)]), 10.0, 2.0) if w.start == 8.0)
    words = [Word("early", 0.5, 1.0, 0.9), Word("edge", 1.8, 2.6, 0.9), Word("late", 2.5, 3.5, 0.9)]
    # The second window (8 s to 18 s) keeps midpoints from 8.5 s to its seam at 17 s that lie after the
    # last word kept so far: "early" (8.75 s) only where the first window kept nothing past 8.75 s.
    assert [w.word for w in kept_words(later, Transcript("", words), after=8.9)] == ["edge", "late"]
    assert [(w.start, w.end) for w in kept_words(later, Transcript("", words), 8.9)] == [(9.8, 10.6), (10.5, 11.5)]
    assert [w.word for w in kept_words(later, Transcript("", words), after=8.6)] == ["early", "edge", "late"]
    assert [w.word for w in kept_words(window, Transcript("", words))] == ["early", "edge", "late"]


@pytest.mark.parametrize("earlier_mid, later_mid", [(8.99, 9.01), (9.01, 8.99), (8.9, 9.02), (9.1, 8.98)])
def test_a_word_on_the_seam_is_kept_once_whichever_side_each_window_places_it(earlier_mid, later_mid):
    """Each window times a word with its own context, so the two may place it on either side of the seam:
    it is kept once while the two midpoints are less than half the word's length apart."""
    earlier, later = list(windows(iter([(torch.zeros(1, 18_000), 1000)]), 10.0, 2.0))
    assert (earlier.keep_to, later.start) == (9.0, 8.0)

    def going(mid: float, window_start: float) -> Word:
        return Word("going", mid - 0.13 - window_start, mid + 0.13 - window_start, 0.9)

    first = kept_words(earlier, Transcript("", [Word("before", 7.0, 7.5, 0.9), going(earlier_mid, 0.0)]))
    after = Word("after", 2.0, 2.5, 0.9)  # at 10 s in the file
    second = kept_words(later, Transcript("", [going(later_mid, 8.0), after]), first[-1].end)
    assert [w.word for w in first + second] == ["before", "going", "after"]


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber.from_checkpoint(DEFAULT_CHECKPOINT, "cpu", "fp32")


def _transcribe(transcriber: Transcriber, data: bytes, seconds: float, overlap: float):
    settings = Settings()

    async def run():
        batcher = Batcher(lambda ws: transcriber.transcribe([(w, 16000) for w in ws]), 16000, settings.batch_limits)
        try:
            return await transcribe_file(
                data, batcher.result_of, 16000, replace(settings.windowing, seconds=seconds, overlap_seconds=overlap)
            )
        finally:
            batcher.close()

    return asyncio.run(run())


def test_a_long_file_reads_like_one_pass_over_it(transcriber):
    sentences = [
        "turn off the kitchen lights",
        "the meeting starts at nine tomorrow",
        "please call alice on monday morning",
        "it is going to rain this afternoon",
        "set a timer for twenty minutes",
        "open the garage door",
    ]
    parts = []
    for i, text in enumerate(sentences):
        waveform, rate = decode(speak(text, rate=140 + 10 * i))
        parts += [prepare_waveform(waveform, rate), torch.zeros(16000 * (i % 3) // 2)]
    audio = torch.cat(parts)[None]
    data = encode(audio, 16000, "flac")
    whole = _transcribe(transcriber, data, seconds=120, overlap=4)
    windowed = _transcribe(transcriber, data, seconds=6, overlap=2)
    assert (whole.windows, windowed.windows) == (1, math.ceil((audio.shape[-1] / 16000 - 2) / 4))
    assert whole.duration == windowed.duration == pytest.approx(audio.shape[-1] / 16000)
    # Windows cut words that the next window then reads whole, with less context than one pass has.
    assert cer([whole.transcript.text], [windowed.transcript.text]) <= 0.05
    words = windowed.transcript.words
    # No doubles: no two words overlap in time, as a word read by two windows would.
    assert all(a.end <= b.start for a, b in pairwise(words)) and words[-1].end <= windowed.duration
    # No gaps: every word of the single pass is there, at the same time.
    for word in whole.transcript.words:
        assert any(w.start < word.end and word.start < w.end for w in words), word

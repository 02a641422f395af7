"""Beam searches out of the server's process: the same transcripts as in it, and a dead worker replaced."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
import torch

from asr.beam import MAX_HOTWORD_LETTERS, Beam, BeamDecoder
from asr.language_model import LanguageModel
from asr.text import BLANK, NUM_CLASSES, encode
from service.decoders import DecoderProcesses, DecoderThread
from training.lm import estimate, write_arpa

FRAME = 0.02


def spelled(text: str) -> torch.Tensor:
    """Log-probabilities that say ``text``: each letter for two frames, then a blank, each at 0.9."""
    labels = [label for symbol in encode(text) for label in (symbol, symbol, BLANK)]
    probs = torch.full((len(labels), NUM_CLASSES), 0.1 / (NUM_CLASSES - 1))
    probs[torch.arange(len(labels)), labels] = 0.9
    return probs.log()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    model = estimate(["the cat sat on the mat"] * 20 + ["a dog ran"] * 5, order=3, vocabulary=["kat"])
    write_arpa(model, folder / "lm.arpa")
    LanguageModel(folder / "lm.arpa", tuple(model.vocabulary)).save(folder / "lm.json")
    return folder / "lm.json"


def test_a_worker_process_decodes_as_this_process_does_and_a_dead_one_is_replaced(bundle):
    in_process = BeamDecoder(LanguageModel.load(bundle))
    lp = spelled("the cat sat on the mat")
    expected = in_process.decode(lp, FRAME, 1.5, Beam(alternatives=3))
    assert expected[0].text == "the cat sat on the mat"
    workers = DecoderProcesses(bundle, 1)
    try:
        workers.wait_ready()
        assert asyncio.run(workers.decode(lp, FRAME, 1.5, Beam(alternatives=3))) == expected
        [pid] = workers._pool._processes
        os.kill(pid, signal.SIGKILL)
        assert asyncio.run(workers.decode(lp, FRAME, 1.5, Beam(alternatives=3))) == expected
        assert list(workers._pool._processes) != [pid]
        with pytest.raises(ValueError, match=f"at most {MAX_HOTWORD_LETTERS} letters"):
            asyncio.run(workers.decode(lp, FRAME, 1.5, Beam(hotwords=("a" * (MAX_HOTWORD_LETTERS + 1),))))
    finally:
        workers.close()


def test_a_thread_of_this_process_decodes_the_same(bundle):
    lp = spelled("a dog ran")
    thread = DecoderThread(bundle)
    try:
        [found] = asyncio.run(thread.decode(lp, FRAME, 0.6, Beam()))
    finally:
        thread.close()
    assert found == BeamDecoder(LanguageModel.load(bundle)).decode(lp, FRAME, 0.6)[0]

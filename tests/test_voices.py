import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from asr.features import prepare_waveform
from training import voices as V
from training.voices import Prosody, catalogue, synthesise

ENGINES = ["espeak-ng", "flite", "festival", "piper", "kokoro"]


def _one_voice_per_engine():
    """Collection must not crash on a missing engine: the installation test below names it."""
    voices = catalogue()
    first = (next((v for v in voices if v.engine == engine), None) for engine in ENGINES)
    return [voice for voice in first if voice is not None]


def test_every_engine_is_installed_with_both_sexes_present():
    voices = catalogue()
    assert {v.engine for v in voices} == set(ENGINES)
    assert len({v.id for v in voices}) == len(voices) > 100
    for engine in ("espeak-ng", "flite", "festival", "kokoro"):
        assert {v.sex for v in voices if v.engine == engine} == {"female", "male"}


def test_kokoro_has_its_english_voices_and_blends_that_keep_held_out_voices_apart():
    kokoro = [v.name for v in catalogue() if v.engine == "kokoro"]
    plain = [name for name in kokoro if "+" not in name]
    assert len(plain) == 28 and set(V.KOKORO_HELD_OUT) <= set(plain)
    assert {name[:2] for name in plain} == {"af", "am", "bf", "bm"}
    blends = [[part.split("*") for part in name.split("+")] for name in kokoro if "+" in name]
    assert len(blends) == 2 * V.KOKORO_BLENDS + 2
    for parts in blends:
        names, weights = [n for n, _ in parts], [float(w) for _, w in parts]
        assert 2 <= len(parts) <= 3 and sum(weights) == pytest.approx(1) and weights == sorted(weights, reverse=True)
        assert len({n[1] for n in names}) == 1  # one sex per blend
        assert set(names) <= set(V.KOKORO_HELD_OUT) or not set(names) & set(V.KOKORO_HELD_OUT)
    assert sum(set(n for n, _ in parts) <= set(V.KOKORO_HELD_OUT) for parts in blends) == 2


def test_a_kokoro_blend_is_the_convex_mixture_of_its_members_styles():
    first, second = V.kokoro_style("af_bella"), V.kokoro_style("bf_emma")
    assert first.shape == (V.KOKORO_MAX_TOKENS, 256) and not np.allclose(first, second)
    np.testing.assert_allclose(V.kokoro_style("af_bella*0.70+bf_emma*0.30"), 0.7 * first + 0.3 * second, atol=1e-6)


def test_kokoro_phonemes_are_split_between_clauses_to_fit_the_model():
    _, vocab = V._kokoro_session()
    short = V._phoneme_chunks("Hello there, how are you?", "en-us", vocab)
    assert len(short) == 1 and 15 < len(short[0]) < 40
    long = V._phoneme_chunks("This sentence has a clause, and then another one. " * 30, "en-gb", vocab)
    assert len(long) > 1 and all(0 < len(chunk) <= V.KOKORO_MAX_TOKENS for chunk in long)
    assert sum(map(len, long)) == pytest.approx(
        30 * len(V._phoneme_chunks("This sentence has a clause, and then another one.", "en-gb", vocab)[0]), rel=0.05
    )


@pytest.mark.parametrize("voice", _one_voice_per_engine(), ids=lambda v: v.id)
def test_each_engine_speaks_deterministically_and_obeys_rate_and_volume(voice):
    text = "a visit to a strange place will bring fresh work"
    normal, rate = synthesise(voice, text)
    assert torch.equal(synthesise(voice, text)[0], normal)
    mono = prepare_waveform(normal, rate)
    assert 1.0 < mono.numel() / 16000 < 6.0
    assert mono.abs().max() > 0.05  # not silence
    fast, fast_rate = synthesise(voice, text, Prosody(rate=1.5))
    slow, slow_rate = synthesise(voice, text, Prosody(rate=0.7))
    assert fast.shape[-1] / fast_rate < normal.shape[-1] / rate < slow.shape[-1] / slow_rate
    quiet, _ = synthesise(voice, text, Prosody(volume=0.5))
    assert quiet.abs().max().item() == pytest.approx(0.5 * normal.abs().max().item(), rel=0.05)


@pytest.mark.parametrize("voice", _one_voice_per_engine()[:2], ids=lambda v: v.id)
def test_pitch_shift_raises_the_fundamental(voice):
    def median_f0(waveform, rate):
        return AF.detect_pitch_frequency(prepare_waveform(waveform, rate), 16000).median().item()

    text = "open the garage door and turn on the lights"
    # Four semitones is 26% higher; the frame-lag F0 detector is coarse, so ask for a clear rise only.
    assert median_f0(*synthesise(voice, text, Prosody(pitch=4))) > 1.08 * median_f0(*synthesise(voice, text))

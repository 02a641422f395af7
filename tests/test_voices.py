import pytest
import torch
import torchaudio.functional as AF

from asr.features import prepare_waveform
from training.voices import Prosody, catalogue, synthesise

ENGINES = ["espeak-ng", "flite", "festival", "piper"]


def _one_voice_per_engine():
    voices = catalogue()
    return [next(v for v in voices if v.engine == engine) for engine in ENGINES]


def test_every_engine_is_installed_with_both_sexes_present():
    voices = catalogue()
    assert {v.engine for v in voices} == set(ENGINES)
    assert len({v.id for v in voices}) == len(voices) > 100
    for engine in ("espeak-ng", "flite", "festival"):
        assert {v.sex for v in voices if v.engine == engine} == {"female", "male"}


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

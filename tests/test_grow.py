import dataclasses

import pytest
import torch

from asr import checkpoint
from asr.decoding import greedy_decode
from asr.features import FeatureConfig, features, pad_batch
from asr.model import AcousticModel
from tests.support.speech import SENTENCES, speak, speech, write_chapter
from training.data import FeatureDataset, load
from training.grow import starts, widen, widens
from training.metrics import cer
from training.train import PRESETS, Optimisation, TrainConfig, train


@pytest.fixture(scope="module")
def bundled():
    model, _ = checkpoint.load("asr/models/default.safetensors")
    return model.eval()


@pytest.fixture(scope="module")
def spoken():
    return pad_batch([features(speech(text), 16000) for text in SENTENCES[:4]])


def test_only_wider_grus_count_as_widening():
    default = PRESETS["default"]
    wider = dataclasses.replace(default, rnn_hidden=384, dropout=0.0)
    assert widens(default, wider)
    assert not widens(default, default)
    assert not widens(default, dataclasses.replace(default, rnn_hidden=256))
    assert not widens(default, dataclasses.replace(default, rnn_hidden=384, classifier_dim=384))
    # What train --init accepts: the same weights, or wider GRUs.
    assert starts(default, dataclasses.replace(default, dropout=0.0)) and starts(default, wider)
    assert not starts(default, dataclasses.replace(default, rnn_hidden=256))
    with pytest.raises(ValueError, match="can only widen the GRUs"):
        widen(AcousticModel(default), dataclasses.replace(default, n_rnn_layers=4), torch.Generator())


@pytest.mark.parametrize("hidden", [384, 448])
def test_a_widened_model_reads_speech_as_the_bundled_one_did(bundled, spoken, hidden):
    wide = widen(bundled, dataclasses.replace(bundled.config, rnn_hidden=hidden), torch.Generator().manual_seed(0))
    x, lengths = spoken
    with torch.no_grad():
        before, frames = bundled(x, lengths)
        after, _ = wide.eval()(x, lengths)
    valid = torch.arange(before.shape[1])[None] < frames[:, None]
    kl = (before.exp() * (before - after)).sum(-1)[valid].mean()
    assert kl < 0.01
    assert (before.argmax(-1) == after.argmax(-1))[valid].float().mean() > 0.98
    seconds = bundled.config.frame_seconds(FeatureConfig())
    texts = [greedy_decode(m[i, : frames[i]], seconds).text for m in (before, after) for i in range(4)]
    assert cer(texts[:4], texts[4:]) < 0.03
    assert wide.num_parameters() > bundled.num_parameters() * (1.3 if hidden == 384 else 1.7)


def test_copies_share_their_originals_outgoing_weights_and_training_reaches_them(bundled, spoken):
    wide = widen(bundled, dataclasses.replace(bundled.config, rnn_hidden=352), torch.Generator().manual_seed(0))
    # Each old column is shared out among its repeats, so what the classifier reads sums to the same.
    assert torch.allclose(wide.classifier[0].weight.sum(1), bundled.classifier[0].weight.sum(1), atol=1e-4)
    wide_rows, old_rows = wide.rnns[2].gru.weight_ih_l0[:320], bundled.rnns[2].gru.weight_ih_l0[:320]
    assert torch.allclose(wide_rows.sum(1), old_rows.sum(1), atol=1e-4)
    copies = wide.rnns[1].gru.weight_ih_l0[320:352].detach().clone()
    optimisation = Optimisation(wide, TrainConfig(lr=1e-3), total_steps=10, device=torch.device("cpu"))
    x, lengths = spoken
    optimisation.step(x, lengths, torch.tensor([[5, 6, 7]] * 4), torch.tensor([3] * 4), 4)
    assert not torch.allclose(wide.rnns[1].gru.weight_ih_l0[320:352], copies)


def test_init_with_wider_grus_widens_the_checkpoint(tmp_path):
    clips = [(text, speak(text)) for text in SENTENCES[:4]]
    examples = FeatureDataset(load([write_chapter(tmp_path / "clips", 1, 1, clips)], FeatureConfig()), FeatureConfig())
    config = TrainConfig(model=PRESETS["tiny"], epochs=1, max_frames=700, device="cpu")
    first = tmp_path / "first.safetensors"
    narrow, _ = train(config, examples, out=first, workers=0)
    wider = dataclasses.replace(config, model=dataclasses.replace(PRESETS["tiny"], rnn_hidden=160), lr=0.0)
    wide, _ = train(wider, examples, init=first, workers=0)
    assert wide.config.rnn_hidden == 160 and torch.equal(wide.conv.weight, narrow.conv.weight)
    assert torch.equal(wide.rnns[0].gru.weight_ih_l0[:128], narrow.rnns[0].gru.weight_ih_l0[:128])

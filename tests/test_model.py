import dataclasses

import pytest
import torch
import torch.nn.functional as F

from asr.checkpoint import DEFAULT_CHECKPOINT, load
from asr.model import AcousticModel, ModelConfig
from training.train import PRESETS


def test_reference_size_is_about_23m_parameters():
    model = AcousticModel(ModelConfig())
    assert 23e6 * 0.9 <= model.num_parameters() <= 23e6 * 1.1


def test_reference_architecture_matches_the_spec():
    model = AcousticModel(ModelConfig())
    assert (model.conv.in_channels, model.conv.out_channels, model.conv.stride) == (1, 32, (2, 2))
    assert len(model.res_blocks) == 3 and model.project.in_features == 32 * 64 and model.project.out_features == 512
    assert [r.gru.input_size for r in model.rnns] == [512, 1024, 1024, 1024, 1024]
    assert all(r.gru.bidirectional and r.gru.hidden_size == 512 for r in model.rnns)
    assert model.classifier[0].in_features == 1024 and model.classifier[-1].out_features == 29


@pytest.mark.parametrize(
    "config", [ModelConfig(), PRESETS["default"], PRESETS["tiny"]], ids=["reference", "default", "tiny"]
)
def test_output_shapes_and_lengths(config):
    model = AcousticModel(config).eval()
    lengths = torch.tensor([101, 64, 7])
    with torch.inference_mode():
        log_probs, out_lengths = model(torch.randn(3, 128, 101), lengths)
    assert log_probs.shape == (3, 51, 29)
    assert out_lengths.tolist() == [51, 32, 4]
    valid = log_probs[0]
    assert torch.allclose(valid.exp().sum(dim=-1), torch.ones(51), atol=1e-5)


def test_the_front_end_applies_checkpoint_kernels_as_stored_over_mels_by_frames():
    """Checkpoints hold each kernel as (mels, frames); the front end runs over (frames, mels) maps for speed, and
    must give what the plain formulation over (mels, frames) maps gives, or every checkpoint would read wrongly."""
    model, _ = load(DEFAULT_CHECKPOINT)
    features = torch.randn(2, model.config.n_mels, 160, generator=torch.Generator().manual_seed(0)) * 3

    def mel_layer_norm(x, norm):
        return F.layer_norm(x.transpose(2, 3), norm.normalized_shape, norm.weight, norm.bias).transpose(2, 3)

    with torch.inference_mode():
        x = (features - model.centre(features)) / model.feature_std[:, None]
        x = F.conv2d(x.unsqueeze(1), model.conv.weight, model.conv.bias, stride=model.config.stride, padding=1)
        for block in model.res_blocks:
            y = F.conv2d(F.gelu(mel_layer_norm(x, block.norm1)), block.conv1.weight, block.conv1.bias, padding=1)
            x = x + F.conv2d(F.gelu(mel_layer_norm(y, block.norm2)), block.conv2.weight, block.conv2.bias, padding=1)
        expected = model.project(x.flatten(1, 2).transpose(1, 2))
        got, _ = model.front_end(features)
    assert got.shape == expected.shape == (2, 80, model.config.rnn_dim)
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("config", [ModelConfig(), PRESETS["default"]], ids=["reference", "default"])
def test_padding_does_not_change_an_utterance(config):
    model = AcousticModel(config).eval()
    # Non-trivial input statistics, so normalisation does not map padding zeros to zeros.
    model.set_feature_statistics(torch.randn(128, 500) * 3 - 7)
    short, long = torch.randn(128, 77) * 3 - 7, torch.randn(128, 160) * 3 - 7
    batch = torch.zeros(2, 128, 160)
    batch[0, :, :77] = short
    batch[0, :, 77:] = 123.0  # garbage padding must be ignored too
    batch[1] = long
    with torch.inference_mode():
        alone, alone_len = model(short[None], torch.tensor([77]))
        padded, padded_len = model(batch, torch.tensor([77, 160]))
    assert padded_len[0] == alone_len[0] == 39
    assert (padded[0, :39] - alone[0]).abs().max() < 1e-5


def test_wrong_mel_count_is_rejected():
    with pytest.raises(ValueError, match="takes 128 mel bins, got 80"):
        AcousticModel(PRESETS["tiny"])(torch.randn(1, 80, 10), torch.tensor([10]))


def test_unknown_config_field_is_named():
    with pytest.raises(ValueError, match="unknown model config fields: depth"):
        ModelConfig.from_dict({**ModelConfig().to_dict(), "depth": 3})


def test_a_running_mean_cancels_a_fixed_channel_colouring():
    torch.manual_seed(0)
    model = AcousticModel(ModelConfig(running_mean_frames=200)).eval()
    model.feature_mean.normal_()
    speech = torch.randn(1, 128, 600)
    colour = 3 * torch.randn(128, 1)  # a microphone's gain per band: a constant in the log-Mel domain
    plain = speech - model.centre(speech)
    coloured = (speech + colour) - model.centre(speech + colour)
    # What is left of the colouring at frame t is its share of the prior: N / (N + t + 1).
    left = colour * 200 / (200 + torch.arange(1, 601))
    torch.testing.assert_close(coloured - plain, left.expand(1, -1, -1), atol=1e-4, rtol=0)
    # The fixed centring (the default) keeps all of it.
    fixed = AcousticModel(ModelConfig())
    torch.testing.assert_close(
        (speech + colour - fixed.centre(speech)) - (speech - fixed.centre(speech)), colour.expand(1, -1, 600)
    )


def test_same_shape_ignores_what_holds_no_weights():
    config = ModelConfig()
    assert config.same_shape(dataclasses.replace(config, dropout=0.3, running_mean_frames=100))
    assert not config.same_shape(dataclasses.replace(config, rnn_hidden=256))

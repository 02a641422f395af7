import json

import pytest
import safetensors.torch
import torch

from asr import checkpoint
from asr.checkpoint import CheckpointError
from asr.features import FeatureConfig
from asr.model import AcousticModel
from training.train import PRESETS


@pytest.fixture
def saved(tmp_path):
    model = AcousticModel(PRESETS["tiny"]).eval()
    model.set_feature_statistics(torch.randn(128, 50))
    path = tmp_path / "model.safetensors"
    checkpoint.save(path, model, FeatureConfig(), {"data": "unit test", "steps": 3, "metrics": {"cer": 0.5}})
    return path, model


def _rewrite_header(path, **changes):
    tensors = safetensors.torch.load_file(str(path))
    with safetensors.safe_open(str(path), framework="pt") as handle:
        header = handle.metadata()
    safetensors.torch.save_file(tensors, str(path), metadata={**header, **changes})


def test_round_trip_restores_weights_configs_and_provenance(saved):
    path, original = saved
    model, info = checkpoint.load(path, "cpu")
    assert info.model_config == original.config
    assert info.feature_config == FeatureConfig()
    assert info.provenance == {"data": "unit test", "steps": 3, "metrics": {"cer": 0.5}}
    assert not model.training
    features = torch.randn(2, 128, 40)
    with torch.inference_mode():
        assert torch.equal(model(features)[0], original(features)[0])


def test_weights_load_without_pickle(saved):
    path, _ = saved
    assert not path.read_bytes().startswith(b"PK")  # not a torch.save zip archive
    assert json.loads(path.read_bytes()[8 : 8 + int.from_bytes(path.read_bytes()[:8], "little")])["__metadata__"]


def test_other_format_version_names_both_versions(saved):
    path, _ = saved
    _rewrite_header(path, format_version="2")
    with pytest.raises(CheckpointError, match="format version 2 is not supported; this build reads version 1"):
        checkpoint.load(path)


def test_shape_mismatch_names_the_tensor_and_shapes(saved):
    path, _ = saved
    config = json.loads(safetensors.safe_open(str(path), framework="pt").metadata()["model_config"])
    _rewrite_header(path, model_config=json.dumps({**config, "rnn_hidden": 96}))
    with pytest.raises(
        CheckpointError,
        match=r"tensor rnns\.0\.gru\.weight_hh_l0 has shape \(384, 128\) but the model config needs \(288, 96\)",
    ):
        checkpoint.load(path)


def test_foreign_alphabet_is_rejected(saved):
    path, _ = saved
    _rewrite_header(path, alphabet=json.dumps("abc"))
    with pytest.raises(CheckpointError, match="alphabet 'abc' differs"):
        checkpoint.load(path)


def test_not_a_checkpoint(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        checkpoint.load(junk)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        checkpoint.load(tmp_path / "missing.safetensors")
    plain = tmp_path / "plain.safetensors"
    safetensors.torch.save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(CheckpointError, match="not an asr-checkpoint file"):
        checkpoint.load(plain)


def test_bundled_default_model_loads():
    model, info = checkpoint.load(checkpoint.DEFAULT_CHECKPOINT)
    assert info.provenance["train_utterances"] > 0
    assert model.config.n_classes == 29

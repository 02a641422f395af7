"""Numeric paths: which one each device gets, and what int8 does to the bundled model's output."""

from __future__ import annotations

import pydantic
import pytest
import torch
from torch.ao.nn.quantized import dynamic

from asr import precision
from asr.precision import _InBf16, native_bf16, resolve
from asr.transcriber import Transcriber
from service.settings import Settings, available_cores
from tests.support.speech import SENTENCES, speech
from training.metrics import cer


def test_auto_is_int8_on_the_cpu_and_int8_is_refused_on_a_gpu():
    assert resolve("auto", torch.device("cpu")) == "int8"
    assert resolve("fp32", torch.device("cpu")) == "fp32"
    with pytest.raises(ValueError, match="CPU only"):
        resolve("int8", torch.device("cuda"))
    with pytest.raises(ValueError, match="auto, fp32, bf16, fp16, int8"):
        resolve("fp64", torch.device("cpu"))


def test_an_unknown_precision_setting_is_refused_before_start_up(monkeypatch):
    monkeypatch.setenv("ASR_PRECISION", "int4")
    with pytest.raises(pydantic.ValidationError, match="precision"):
        Settings()


def test_the_model_s_threads_leave_a_core_to_the_event_loop_and_one_per_decoding_process_shared_by_workers(monkeypatch):
    monkeypatch.setattr("service.settings.available_cores", lambda: 8)
    assert Settings().threads == 3 and Settings(decode_processes=3).threads == 2
    assert Settings(inference_workers=1).threads == 6 and Settings(inference_workers=3).threads == 2
    assert Settings(decode_processes=9).threads == 1 and Settings(torch_threads=3).threads == 3
    monkeypatch.setattr("service.settings.available_cores", lambda: 2)
    assert Settings().threads == 1 and Settings(inference_workers=1).threads == 1


def test_a_container_s_cpu_quota_bounds_the_cores(tmp_path, monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(64)))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("250000 100000\n")  # 2.5 CPUs
    assert available_cores(cpu_max) == 3
    cpu_max.write_text("max 100000\n")
    assert available_cores(cpu_max) == 64
    assert available_cores(tmp_path / "absent") == 64


def test_int8_quantises_the_grus_and_linears_and_keeps_the_text():
    fp32 = Transcriber.from_checkpoint("asr/models/default.safetensors", "cpu", "fp32")
    int8 = Transcriber.from_checkpoint("asr/models/default.safetensors", "cpu", "int8")
    kinds = {type(m) for m in int8.model.modules()}
    assert {dynamic.GRU, dynamic.Linear} <= kinds and torch.nn.GRU not in kinds and torch.nn.Linear not in kinds
    assert int8.num_parameters == fp32.num_parameters == fp32.model.num_parameters()
    # Where the CPU has native bf16 (this project's machines do), the convolutions run in it.
    assert isinstance(int8.model.conv, _InBf16) == native_bf16()
    assert all(isinstance(block, _InBf16) == native_bf16() for block in int8.model.res_blocks)
    clips = [(speech(text), 16000) for text in SENTENCES]
    exact = [t.text for t in fp32.transcribe(clips)]
    quantised = [t.text for t in int8.transcribe(clips)]
    assert cer(exact, quantised) <= 0.03
    assert cer(SENTENCES, quantised) <= cer(SENTENCES, exact) + 0.03


@pytest.mark.parametrize("samples", [1, 160, 320, 480, 8000])
def test_int8_with_bf16_convolutions_reads_clips_of_one_or_two_frames_as_fp32_does(monkeypatch, samples):
    """A 60-byte WAV of one frame made the strided convolution's bf16 kernel return NaN on an AMX CPU,
    and the int8 layers after it then failed the request (a 500)."""
    monkeypatch.setattr(precision, "native_bf16", lambda: True)
    fp32 = Transcriber.from_checkpoint("asr/models/default.safetensors", "cpu", "fp32")
    mixed = Transcriber.from_checkpoint("asr/models/default.safetensors", "cpu", "int8")
    assert isinstance(mixed.model.conv, _InBf16)
    clip = [(torch.randn(1, samples, generator=torch.Generator().manual_seed(samples)) * 0.1, 16000)]
    exact, got = fp32.log_probs(clip)[0], mixed.log_probs(clip)[0]
    assert got.shape == exact.shape and torch.isfinite(got).all()
    assert (got.exp() - exact.exp()).abs().max() < 0.1

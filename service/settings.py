"""Every setting of the service, read from ``ASR_*`` environment variables; defaults live here only."""

from __future__ import annotations

import math
import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from asr.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from asr.beam import MAX_BEAM_SIZE, Beam
from asr.checkpoint import DEFAULT_CHECKPOINT
from asr.decoding import Greedy
from asr.language_model import DEFAULT_LM
from asr.precision import Precision
from asr.transcriber import Decoding
from service.batching import BatchLimits
from service.limits import FileLimits, StreamLimits, UploadLimits
from service.vad import VadConfig
from service.vosk import StreamConfig
from service.windowing import Windowing


def available_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """The cores this process may use: its affinity, or its container's CPU quota where that is less (a pod
    limited to 2 CPUs on a 64-core node sees 64 in its affinity)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()
    except (OSError, ValueError):
        return cores
    return cores if quota == "max" else max(1, min(cores, math.ceil(int(quota) / int(period))))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASR_", frozen=True)

    host: str = Field("127.0.0.1", description="Interface to listen on; 0.0.0.0 to accept remote clients.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port.")
    checkpoint: Path = Field(DEFAULT_CHECKPOINT, description="Model checkpoint to serve (.safetensors).")
    lm: Path | None = Field(
        DEFAULT_LM, description="Language model bundle (.json) for beam search; empty for greedy decoding only."
    )
    beam_size: int | None = Field(None, gt=0, le=MAX_BEAM_SIZE, description="Beam width; unset: the LM's tuned one.")
    lm_weight: float | None = Field(None, ge=0, description="LM weight (alpha); unset: the LM's tuned value.")
    word_score: float | None = Field(None, description="Score per word (beta); unset: the LM's tuned value.")
    hotword_boost: float | None = Field(None, description="Default boost of request hotwords; unset: the LM's.")
    decode_processes: int = Field(
        1, ge=0, description="Processes running beam searches beside the model's; 0: one thread of the server's."
    )
    inference_workers: int = Field(
        2, gt=0, description="Threads running the model, each on a batch of its own, so their kernels overlap."
    )
    torch_threads: int = Field(
        0,
        ge=0,
        description="PyTorch threads of each inference worker; 0: the cores less one per decoding process and one "
        "more, shared among the workers.",
    )
    device: str = Field("auto", description="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
    precision: Precision = Field(
        "auto", description="auto (int8 on CPU, bf16 or fp16 on CUDA), fp32, bf16, fp16 or int8 (CPU only)."
    )
    max_upload_bytes: int = Field(1024**3, gt=0, description="Largest accepted upload (1 GiB), refused as it streams.")
    max_duration_seconds: float = Field(3 * 3600.0, gt=0, description="Longest accepted file, in seconds of audio.")
    request_timeout_seconds: float = Field(600.0, gt=0, description="Deadline for one file's transcription.")
    max_queue: int = Field(256, gt=0, description="Clips waiting for an inference worker beyond which files get 503.")
    max_streams: int = Field(64, gt=0, description="Open streams beyond which new ones are refused (close 1013).")
    max_connections: int = Field(
        1000, gt=0, description="Open connections (HTTP and WebSocket) beyond which new ones get 503 and are closed."
    )
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="Time a connection has to send a request's line and headers (408, closed)."
    )
    max_header_bytes: int = Field(65536, gt=0, description="Largest request line and headers together (431, closed).")
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest pause in an upload, and the time after which its pace is checked (408)."
    )
    min_upload_bytes_per_second: float = Field(
        1024.0, ge=0, description="Slowest average upload accepted once ASR_BODY_TIMEOUT_SECONDS have passed (408)."
    )
    keep_alive_seconds: float = Field(5.0, gt=0, description="How long an idle keep-alive connection stays open.")
    log_level: str = Field("info", description="Log level: debug, info, warning or error.")
    log_format: Literal["json", "text"] = Field("json", description="json: one object per line; text: for people.")
    api_keys: SecretStr = Field(SecretStr(""), description="Comma-separated API keys; when any is set, /v1/ needs one.")
    api_keys_file: Path | None = Field(None, description="A file of API keys, one per line, added to ASR_API_KEYS.")
    cors_origins: str = Field("", description="Comma-separated origins that browsers may call from; none by default.")
    drain_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long requests and streams in flight may take to finish."
    )

    max_batch_size: int = Field(16, gt=0, description="Most clips (file windows, stream decodes) per forward pass.")
    max_batch_seconds: float = Field(
        60.0, gt=0, description="Most padded audio per forward pass, in seconds (on a GPU, raise it: 320)."
    )
    max_wait_ms: float = Field(10.0, ge=0, description="How long a clip may wait for others to share its batch.")
    window_seconds: float = Field(20.0, gt=0, description="Files longer than this are cut into windows this long.")
    window_overlap_seconds: float = Field(4.0, ge=0, description="Overlap between neighbouring windows.")
    windows_in_flight: int = Field(4, gt=0, description="Windows of one file queued at once (bounds its memory).")

    stream_sample_rate: int = Field(
        8000, ge=MIN_SAMPLE_RATE, le=MAX_SAMPLE_RATE, description="PCM rate of streams sent no config (Vosk's default)."
    )
    stream_vad: Literal["neural", "energy"] = Field(
        "neural", description="Voice-activity detector: neural (Silero's network) or energy (level over the floor)."
    )
    stream_endpoint_silence_ms: float = Field(300.0, gt=0, description="A pause this long ends an utterance.")
    stream_max_utterance_seconds: float = Field(15.0, gt=0, description="Unbroken speech is cut this often.")
    stream_partial_interval_ms: float = Field(400.0, gt=0, description="New audio between two partial results.")
    stream_partial_beam_size: int = Field(
        8, ge=0, le=MAX_BEAM_SIZE, description="Beam width of partial reads (their text is provisional); 0: greedy."
    )
    stream_window_seconds: float = Field(
        4.0, ge=0, description="Partial reads recompute only this much of an open utterance; 0 re-reads all of it."
    )
    stream_idle_seconds: float = Field(
        600.0, gt=0, description="A stream silent this long is closed (1008): long enough for push-to-talk clients."
    )
    stream_max_message_bytes: int = Field(
        1024 * 1024, gt=0, description="Largest WebSocket message; bigger ones close the stream (1009)."
    )

    @field_validator("lm", mode="before")
    @classmethod
    def _no_lm(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in ("", "none") else value

    @model_validator(mode="after")
    def _windows_advance(self) -> Settings:
        if self.window_overlap_seconds >= self.window_seconds:
            raise ValueError("window_overlap_seconds must be shorter than window_seconds")
        return self

    def load_api_keys(self) -> tuple[str, ...]:
        """The configured keys, from ASR_API_KEYS and ASR_API_KEYS_FILE (blank lines and # comments skipped)."""
        keys = self.api_keys.get_secret_value().split(",")
        if self.api_keys_file is not None:
            keys += [line for line in self.api_keys_file.read_text().splitlines() if not line.startswith("#")]
        return tuple(key.strip() for key in keys if key.strip())

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @property
    def threads(self) -> int:
        """``torch_threads``, or where it is 0 each inference worker's share of the cores left to the model: the
        event loop and each decoding process keep one. On 2 cores that is 1: two threads in one worker made small
        kernels wait on each other and on the rest of the server, where two workers of one thread each overlap
        them (docs/performance.md)."""
        if self.torch_threads:
            return self.torch_threads
        return max(1, (available_cores() - 1 - self.decode_processes) // self.inference_workers)

    @cached_property
    def batch_limits(self) -> BatchLimits:
        return BatchLimits(self.max_batch_size, self.max_batch_seconds, self.max_wait_ms)

    @cached_property
    def decoding(self) -> Decoding:
        """How requests that ask for nothing else are decoded: beam search with the LM, or greedy without one."""
        if self.lm is None:
            return Greedy()
        return Beam(
            beam_size=self.beam_size, alpha=self.lm_weight, beta=self.word_score, hotword_boost=self.hotword_boost
        )

    @cached_property
    def upload_limits(self) -> UploadLimits:
        return UploadLimits(self.max_upload_bytes, self.body_timeout_seconds, self.min_upload_bytes_per_second)

    @cached_property
    def file_limits(self) -> FileLimits:
        return FileLimits(self.max_duration_seconds, self.request_timeout_seconds, self.max_queue)

    @cached_property
    def windowing(self) -> Windowing:
        return Windowing(self.window_seconds, self.window_overlap_seconds, self.windows_in_flight)

    @cached_property
    def stream_limits(self) -> StreamLimits:
        return StreamLimits(self.max_streams, self.stream_idle_seconds, self.stream_max_message_bytes, self.max_queue)

    @cached_property
    def vad(self) -> VadConfig:
        return VadConfig(
            endpoint_silence_ms=self.stream_endpoint_silence_ms,
            max_utterance_seconds=self.stream_max_utterance_seconds,
            partial_interval_ms=self.stream_partial_interval_ms,
            detector=self.stream_vad,
        )

    @cached_property
    def stream(self) -> StreamConfig:
        return StreamConfig(self.stream_sample_rate, self.stream_partial_beam_size, self.vad)

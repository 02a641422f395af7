"""Every setting of the service, read from ``ASR_*`` environment variables; defaults live here only."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from asr.checkpoint import DEFAULT_CHECKPOINT


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASR_", frozen=True)

    host: str = Field("127.0.0.1", description="Interface to listen on; 0.0.0.0 to accept remote clients.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port.")
    checkpoint: Path = Field(DEFAULT_CHECKPOINT, description="Model checkpoint to serve (.safetensors).")
    device: str = Field("auto", description="auto (CUDA when present, else CPU), cpu, cuda or cuda:N.")
    max_upload_bytes: int = Field(100 * 1024 * 1024, gt=0, description="Largest accepted audio upload.")
    log_level: str = Field("info", description="Uvicorn log level.")

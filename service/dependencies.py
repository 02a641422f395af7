"""What route handlers receive: the settings, the metrics and the loaded engine, all held on ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.engine import Engine
from service.errors import ApiError
from service.metrics import Metrics
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_engine(request: Request) -> Engine:
    """The engine, or a 503 while the model is still loading (or failed to)."""
    engine = request.app.state.engine
    if engine is None:
        raise ApiError(503, "model_not_ready", "the model is not loaded yet; GET /ready says when it is")
    return engine


def admit(engine: Annotated[Engine, Depends(get_engine)], request: Request) -> Engine:
    """The engine, or a 503 with Retry-After while its queue is full: shed load rather than fall behind."""
    limit = request.app.state.settings.max_queue
    if engine.batcher.queue_depth >= limit:
        message = f"the server is at its limit of {limit} queued clips (ASR_MAX_QUEUE); try again shortly"
        raise ApiError(503, "overloaded", message, headers={"Retry-After": "1"})
    return engine


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
EngineDep = Annotated[Engine, Depends(get_engine)]
AdmittedEngineDep = Annotated[Engine, Depends(admit)]

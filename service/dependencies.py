"""What route handlers receive: the settings, the metrics and the recogniser, all held on ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.errors import ApiError
from service.metrics import Metrics
from service.recogniser import Recogniser
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


def get_recogniser(request: Request) -> Recogniser:
    """The recogniser, or a 503 while the model is still loading (or failed to)."""
    recogniser = request.app.state.recogniser
    if recogniser is None:
        raise ApiError(503, "model_not_ready", "the model is not loaded yet; GET /ready says when it is")
    return recogniser


RecogniserDep = Annotated[Recogniser, Depends(get_recogniser)]


def admit(recogniser: RecogniserDep, settings: SettingsDep) -> Recogniser:
    """The recogniser, or a 503 with Retry-After while its queue is full: shed load rather than fall behind."""
    limit = settings.file_limits.max_queue
    if recogniser.queue_depth >= limit:
        message = f"the server is at its limit of {limit} queued clips (ASR_MAX_QUEUE); try again shortly"
        raise ApiError(503, "overloaded", message, headers={"Retry-After": "1"})
    return recogniser


AdmittedRecogniserDep = Annotated[Recogniser, Depends(admit)]

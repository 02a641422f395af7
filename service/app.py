"""The FastAPI application: ``service.app:app``, or :func:`create_app` with explicit settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI

import asr
from asr.transcriber import Transcriber
from service import errors, routes
from service.settings import Settings

log = logging.getLogger("service")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Load the model and run one warm-up clip before the server accepts requests."""
    settings: Settings = app.state.settings
    transcriber = await asyncio.to_thread(Transcriber.from_checkpoint, settings.checkpoint, settings.device)
    rate = transcriber.info.feature_config.sample_rate
    await asyncio.to_thread(transcriber.transcribe, [(torch.zeros(rate), rate)])
    log.info(
        "loaded %s (%d parameters) on %s", settings.checkpoint, transcriber.model.num_parameters(), transcriber.device
    )
    app.state.transcriber = transcriber
    yield


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="asr",
        version=asr.__version__,
        lifespan=lifespan,
        description="Speech recognition: upload audio, get text with word timings.",
    )
    app.state.settings = settings or Settings()
    errors.install(app)
    app.include_router(routes.router)
    return app


app = create_app()

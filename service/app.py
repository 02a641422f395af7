"""The FastAPI application: ``service.app:app``, or :func:`create_app` with explicit settings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

import asr
from service import errors
from service.access import Access
from service.auth import ApiKeys, digest
from service.body import BodyLimit
from service.engine import Engine
from service.memory import trim_forever
from service.metrics import Metrics
from service.recogniser import Recogniser
from service.routers import files, openai, ops, stream, web
from service.settings import Settings
from service.shutdown import Drain, DrainGate

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Accept connections at once (``/health``), and load the model in the background (``/ready`` then says so),
    unless the app was given a recogniser."""
    app.state.drain = Drain(app.state.settings.drain_seconds)
    loading = None if app.state.recogniser is not None else asyncio.create_task(_load(app))
    trimming = asyncio.create_task(trim_forever())
    try:
        yield
    finally:
        if loading is not None:
            loading.cancel()
        trimming.cancel()
        if app.state.recogniser is not None:
            await asyncio.to_thread(app.state.recogniser.close)


async def _load(app: FastAPI) -> None:
    try:
        app.state.recogniser = await asyncio.to_thread(Engine.load, app.state.settings, app.state.metrics)
    except Exception:
        log.exception("could not load %s; /ready stays 503", app.state.settings.checkpoint)
        app.state.load_failed = True


def create_app(settings: Settings | None = None, recogniser: Recogniser | None = None) -> FastAPI:
    """The service with ``settings`` (default: from the environment), serving ``recogniser`` if one is given,
    else the model that the settings name, loaded once the app starts."""
    app = FastAPI(
        title="asr",
        version=asr.__version__,
        lifespan=lifespan,
        description="Speech recognition: files over REST (native and OpenAI-compatible), live audio over WebSocket.",
    )
    settings = settings or Settings()
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.recogniser = recogniser
    app.state.load_failed = False
    app.state.open_streams = 0
    # Outermost last: Access, CORS, ApiKeys, DrainGate, BodyLimit, then the routes.
    app.add_middleware(BodyLimit, limits=settings.upload_limits)
    app.add_middleware(DrainGate)
    app.add_middleware(ApiKeys, keys=tuple(digest(key) for key in settings.load_api_keys()))
    if origins := settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(Access, metrics=app.state.metrics)
    errors.install(app)
    for router in (ops.router, files.router, openai.router, stream.router, web.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    return app


app = create_app()

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
from service.auth import ApiKeys, digest
from service.engine import Engine
from service.limits import BodyLimit
from service.logs import RequestLog
from service.memory import trim_forever
from service.metrics import Metrics, RequestMetrics
from service.routers import files, openai, ops, stream, web
from service.settings import Settings
from service.shutdown import Drain, DrainGate

log = logging.getLogger("service")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Accept connections at once (``/health``), and load the model in the background (``/ready`` then says so)."""
    app.state.engine = None
    app.state.drain = Drain(app.state.settings.drain_seconds)
    loading = asyncio.create_task(_load(app))
    trimming = asyncio.create_task(trim_forever())
    try:
        yield
    finally:
        loading.cancel()
        trimming.cancel()
        if app.state.engine is not None:
            await asyncio.to_thread(app.state.engine.close)


async def _load(app: FastAPI) -> None:
    try:
        app.state.engine = await asyncio.to_thread(Engine.load, app.state.settings, app.state.metrics)
    except Exception:
        log.exception("could not load %s; /ready stays 503", app.state.settings.checkpoint)
        app.state.load_failed = True


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="asr",
        version=asr.__version__,
        lifespan=lifespan,
        description="Speech recognition: files over REST (native and OpenAI-compatible), live audio over WebSocket.",
    )
    app.state.settings = settings or Settings()
    app.state.metrics = Metrics()
    app.state.load_failed = False
    app.state.open_streams = 0
    # Outermost last: RequestLog, RequestMetrics, CORS, ApiKeys, DrainGate, BodyLimit, then the routes.
    app.add_middleware(BodyLimit)
    app.add_middleware(DrainGate)
    app.add_middleware(ApiKeys, keys=tuple(digest(key) for key in app.state.settings.load_api_keys()))
    if origins := app.state.settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    app.add_middleware(RequestLog)
    errors.install(app)
    for router in (ops.router, files.router, openai.router, stream.router, web.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=web.STATIC), name="static")
    return app


app = create_app()

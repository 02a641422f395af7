"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.dependencies import MetricsDep
from service.schemas import Health

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, summary="Liveness: the process is up")
async def health() -> Health:
    return Health(status="ok")


@router.get(
    "/ready",
    response_model=Health,
    summary="Readiness: the model is loaded and warmed up, and the service is not shutting down",
    responses={503: {"description": "The model is still loading or failed to load, or the service is draining"}},
)
async def ready(request: Request) -> Response:
    if request.app.state.drain.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    if request.app.state.recogniser is not None:
        return JSONResponse({"status": "ready"})
    status = "failed" if request.app.state.load_failed else "loading"
    return JSONResponse({"status": status}, status_code=503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

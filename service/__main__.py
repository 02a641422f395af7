"""``python -m service``: serve the configured checkpoint with uvicorn."""

from __future__ import annotations

import torch
import uvicorn
from fastapi import FastAPI

from service import connections, logs
from service.app import create_app
from service.settings import Settings
from service.shutdown import Server


def uvicorn_config(app: FastAPI, settings: Settings, log_config: dict | None = None) -> uvicorn.Config:
    """uvicorn as the service runs in it: its connection limits and JSON refusals (:mod:`service.connections`)."""
    # The drain (service.shutdown) has already waited ASR_DRAIN_SECONDS; uvicorn then waits 1 s more at most.
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=log_config,
        access_log=False,  # service.access writes it, without query strings
        timeout_graceful_shutdown=1,
        ws_max_size=settings.stream_limits.max_message_bytes,
        http=connections.protocol(settings),
        ws=connections.WebSocket,
        timeout_keep_alive=settings.keep_alive_seconds,
    )


def main() -> None:
    settings = Settings()
    torch.set_num_threads(settings.threads)  # here, not in the app: tests run apps inside their own process
    app = create_app(settings)
    Server(uvicorn_config(app, settings, logs.config(settings.log_level, settings.log_format)), app).run()


if __name__ == "__main__":
    main()

"""``python -m service``: serve the configured checkpoint with uvicorn."""

import logging

import uvicorn

from service.app import create_app
from service.settings import Settings
from service.shutdown import Server


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    app = create_app(settings)
    # The drain (service.shutdown) has already waited ASR_DRAIN_SECONDS; uvicorn then waits 1 s more at most.
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=1,
        ws_max_size=settings.stream_max_message_bytes,
    )
    Server(config, app).run()


if __name__ == "__main__":
    main()

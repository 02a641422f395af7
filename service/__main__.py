"""``python -m service``: serve the configured checkpoint with uvicorn."""

import uvicorn

from service import connections, logs
from service.app import create_app
from service.settings import Settings
from service.shutdown import Server


def main() -> None:
    settings = Settings()
    app = create_app(settings)
    # The drain (service.shutdown) has already waited ASR_DRAIN_SECONDS; uvicorn then waits 1 s more at most.
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=logs.config(settings.log_level, settings.log_format),
        access_log=False,  # service.logs writes it, without query strings
        timeout_graceful_shutdown=1,
        ws_max_size=settings.stream_max_message_bytes,
        http=connections.protocol(settings),
        ws=connections.WebSocket,
        timeout_keep_alive=settings.keep_alive_seconds,
    )
    Server(config, app).run()


if __name__ == "__main__":
    main()

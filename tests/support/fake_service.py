"""``python -m tests.support.fake_service``: the service's real process (uvicorn, the drain, the logs) serving a
recogniser without a model whose reads never finish: work that is in flight for as long as a test needs, on any
machine, however fast. Its ``asr_queue_depth`` counts the reads waiting."""

from __future__ import annotations

from service import logs
from service.__main__ import uvicorn_config
from service.app import create_app
from service.settings import Settings
from service.shutdown import Server
from tests.support.fake import FakeRecogniser


def main() -> None:
    settings = Settings()
    fake = FakeRecogniser(hold=True)
    app = create_app(settings, fake)
    app.state.metrics.queue_depth.set_function(lambda: fake.waiting)
    Server(uvicorn_config(app, settings, logs.config(settings.log_level, settings.log_format)), app).run()


if __name__ == "__main__":
    main()

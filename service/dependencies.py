"""What route handlers receive: the settings and the loaded model, both held on ``app.state``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from asr.transcriber import Transcriber
from service.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_transcriber(request: Request) -> Transcriber:
    return request.app.state.transcriber


SettingsDep = Annotated[Settings, Depends(get_settings)]
TranscriberDep = Annotated[Transcriber, Depends(get_transcriber)]

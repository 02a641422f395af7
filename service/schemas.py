"""Response bodies, as they appear in the OpenAPI document."""

from __future__ import annotations

from pydantic import BaseModel, Field


class WordTiming(BaseModel):
    word: str
    start: float = Field(description="Seconds from the start of the audio.")
    end: float
    confidence: float = Field(ge=0, le=1)


class Transcription(BaseModel):
    text: str
    duration: float = Field(description="Length of the audio in seconds.")
    words: list[WordTiming]
    model: str
    processing_seconds: float = Field(description="Server time spent decoding and recognising the audio.")


class Health(BaseModel):
    status: str

"""Response bodies, as they appear in the OpenAPI document."""

from __future__ import annotations

from pydantic import BaseModel, Field

from asr.transcript import Segment, Word, segment
from service.windowing import FileTranscript


class WordTiming(BaseModel):
    word: str
    start: float = Field(description="Seconds from the start of the audio.")
    end: float
    confidence: float = Field(ge=0, le=1)

    @classmethod
    def of(cls, word: Word) -> WordTiming:
        return cls(
            word=word.word, start=round(word.start, 3), end=round(word.end, 3), confidence=round(word.confidence, 4)
        )


class SegmentTiming(BaseModel):
    start: float = Field(description="Seconds from the start of the audio.")
    end: float
    text: str

    @classmethod
    def of(cls, segment: Segment) -> SegmentTiming:
        return cls(start=round(segment.start, 3), end=round(segment.end, 3), text=segment.text)


class Transcription(BaseModel):
    text: str
    duration: float = Field(description="Length of the audio in seconds.")
    segments: list[SegmentTiming] = Field(description="Stretches of speech between pauses, at most 15 s each.")
    words: list[WordTiming]
    model: str
    processing_seconds: float = Field(description="Server time spent decoding and recognising the audio.")

    @classmethod
    def of(cls, result: FileTranscript, model: str, seconds: float) -> Transcription:
        words = result.transcript.words
        return cls(
            text=result.transcript.text,
            duration=round(result.duration, 3),
            segments=[SegmentTiming.of(s) for s in segment(words)],
            words=[WordTiming.of(w) for w in words],
            model=model,
            processing_seconds=round(seconds, 4),
        )


class Health(BaseModel):
    status: str


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    created: int = Field(description="Unix time the checkpoint was written.")
    owned_by: str = "asr"


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]

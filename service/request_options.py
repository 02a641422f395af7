"""Per-request decoding options, from REST query fields or a stream's Vosk config, checked once for both."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, Field

from asr.beam import MAX_BEAM_SIZE, MAX_HOTWORD_LETTERS, UNKNOWN_PHRASE, spelled
from asr.decoding import Greedy
from asr.text import normalise
from asr.transcriber import Decoding
from service.limits import MAX_HOTWORDS, MAX_HOTWORDS_TEXT


class InvalidOption(ValueError):
    """A request option the server cannot honour; ``param`` names it (400 over REST, 1007 on a stream)."""

    def __init__(self, param: str, message: str):
        super().__init__(f"{param}: {message}")
        self.param = param


class DecodingQuery(BaseModel):
    """How to decode this request; anything left out takes the server's setting (``ASR_*``)."""

    decoder: Literal["beam", "greedy"] | None = Field(
        None, description="beam (with the LM; the default when the server has one) or greedy"
    )
    beam_size: int | None = Field(None, ge=1, le=MAX_BEAM_SIZE, description="Hypotheses kept per frame.")
    lm_weight: float | None = Field(None, ge=0, le=10, description="Weight of the language model (alpha).")
    word_score: float | None = Field(None, ge=-20, le=20, description="Score added per word (beta).")
    hotwords: list[str] = Field(
        [],
        description="Words or phrases to favour (names, jargon): repeat the field or separate them with commas. "
        "Each word may be one the LM has never seen.",
    )
    hotword_boost: float | None = Field(
        None, ge=0, le=20, description="How strongly to favour them, in log10 LM probability per word."
    )


def _entries(param: str, phrases: Iterable[object]) -> Iterator[str]:
    """Each entry of a request's list of words or phrases: text, and all together of bounded size."""
    size = 0
    for phrase in phrases:
        if not isinstance(phrase, str):
            raise InvalidOption(param, f"each entry must be text, not {phrase!r:.40}")
        size += len(phrase) + 1
        if size > MAX_HOTWORDS_TEXT:
            raise InvalidOption(param, f"at most {MAX_HOTWORDS_TEXT} characters in all")
        yield phrase


def _words(param: str, text: str) -> list[str]:
    """The words of normalised ``text``, none longer than the decoder's word tree takes."""
    if long := [w for w in text.split() if len(w) > MAX_HOTWORD_LETTERS]:
        raise InvalidOption(param, f"{long[0]:.20}... is longer than {MAX_HOTWORD_LETTERS} letters")
    return text.split()


def hotword_list(phrases: Iterable[object]) -> tuple[str, ...]:
    """The distinct words of ``phrases`` (comma-separated text allowed), normalised to the model's alphabet."""
    words: dict[str, None] = {}
    for phrase in _entries("hotwords", phrases):
        for part in phrase.split(","):
            text = normalise(part)
            if part.strip() and not text:
                raise InvalidOption("hotwords", f"{part.strip()!r} has nothing the model can spell (a-z, ')")
            words.update(dict.fromkeys(w for w in _words("hotwords", text) if spelled(w)))
    if len(words) > MAX_HOTWORDS:
        raise InvalidOption("hotwords", f"at most {MAX_HOTWORDS} words, not {len(words)}")
    return tuple(words)


def grammar_list(phrases: Iterable[object]) -> tuple[str, ...]:
    """Vosk's ``phrase_list``: the distinct phrases, normalised to the model's alphabet (``[unk]`` kept as is)."""
    kept: dict[str, None] = {}
    for phrase in _entries("phrase_list", phrases):
        text = UNKNOWN_PHRASE if phrase.strip() == UNKNOWN_PHRASE else normalise(phrase)
        if _words("phrase_list", text):
            kept[text] = None
    if len({w for phrase in kept for w in phrase.split()}) > MAX_HOTWORDS:
        raise InvalidOption("phrase_list", f"at most {MAX_HOTWORDS} distinct words")
    return tuple(kept)


def decoding_for(
    server: Decoding, query: DecodingQuery, alternatives: int = 0, grammar: Iterable[object] = ()
) -> Decoding:
    """The request's options over the ``server``'s decoding. Beam options on a server that decodes greedily
    (it has no LM), or with ``decoder=greedy``, are refused. ``alternatives``: Vosk's max_alternatives (0: one
    transcript); ``grammar``: its phrase_list."""
    hotwords = hotword_list(query.hotwords)
    phrases = grammar_list(grammar)
    beam_asked = [
        name for name in ("beam_size", "lm_weight", "word_score", "hotword_boost") if getattr(query, name) is not None
    ]
    if hotwords:
        beam_asked.append("hotwords")
    if phrases:
        beam_asked.append("phrase_list")
    if alternatives:
        beam_asked.append("max_alternatives")
    if query.decoder == "greedy" and beam_asked:
        raise InvalidOption(beam_asked[0], "needs decoder=beam, not greedy")
    if isinstance(server, Greedy):
        if query.decoder == "beam" or beam_asked:
            name = "decoder" if query.decoder == "beam" else beam_asked[0]
            raise InvalidOption(name, "this server decodes greedily: it was started without a language model (ASR_LM)")
        return server
    if query.decoder == "greedy":
        return Greedy()
    overrides = {
        "beam_size": query.beam_size,
        "alpha": query.lm_weight,
        "beta": query.word_score,
        "hotwords": hotwords or None,
        "hotword_boost": query.hotword_boost,
    }
    chosen = {name: value for name, value in overrides.items() if value is not None}
    return replace(server, **chosen, alternatives=max(1, alternatives), grammar=phrases)

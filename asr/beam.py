"""CTC prefix beam search with a word n-gram language model, through flashlight-text's lexicon decoder.

The same C++ decoder that torchaudio's ``ctc_decoder`` wraps, used directly so that the KenLM model
and the lexicon trie load once per process while beam width, weights and hotwords change per
request. Words come only from the lexicon (the LM's vocabulary plus a request's hotwords): that is
what turns "wether" into "weather", and why the vocabulary must be broad. Each lexicon word is
spelled with a trailing space, so hypotheses must separate words the way the model does; a frame of
certain space after the last lets the final word end. The decoder returns each hypothesis's
frame-by-frame path, which gives words their times and letter posteriors as in greedy decoding.

Frames the model is all but sure are blank (:func:`kept_frames`) never reach the search: most of a
CTC model's frames are, and the search's cost grows with the frames it steps through.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import torch
from flashlight.lib.text.decoder import (
    LM,
    CriterionType,
    LexiconDecoder,
    LexiconDecoderOptions,
    LMState,
    SmearingMode,
    Trie,
    ZeroLM,
)
from flashlight.lib.text.decoder.kenlm import KenLM
from flashlight.lib.text.dictionary import Dictionary

from asr.decoding import CERTAIN_SPACE, mark_pauses, path_words
from asr.language_model import Calibration, DecodingDefaults, LanguageModel
from asr.text import ALPHABET, BLANK, NUM_CLASSES, SPACE, encode
from asr.transcript import Transcript, Word

UNKNOWN = "<unk>"
UNKNOWN_PHRASE = "[unk]"
"""Vosk's grammar entry for speech outside the other phrases."""
_END_OF_WORD = CERTAIN_SPACE[None]
MAX_BEAM_SIZE = 1024
"""Bounds what one request may cost: the decoding time grows about linearly with the beam."""
MAX_HOTWORD_LETTERS = 48
"""Longer than any English word. flashlight builds and smears its word tree by recursion: one hotword of
100,000 letters overflowed the stack and killed the process."""
_EVIDENCE_HYPOTHESES = 8
"""Hypotheses of the final beam that vote on each word's confidence."""


@dataclass(frozen=True)
class Beam:
    """Beam search with the LM, the peer of :class:`asr.decoding.Greedy`; a ``None`` takes the value tuned with the
    LM."""

    beam_size: int | None = None
    alpha: float | None = None
    """Weight of the LM's log10 probability against the acoustic log-probability."""
    beta: float | None = None
    """Score per word: without it the LM favours hypotheses of few, long words."""
    hotwords: tuple[str, ...] = ()
    hotword_boost: float | None = None
    """Added to a hotword's LM log10 probability (so multiplied by ``alpha``) each time it is said."""
    alternatives: int = 1
    grammar: tuple[str, ...] = ()
    """Vosk's closed grammar: phrases, one of which (or several in a row) is all an utterance may say, in place
    of the LM's sentences. With :data:`UNKNOWN_PHRASE` among them, the LM's search runs as usual instead and
    each word outside the phrases comes out as that."""


LM_DEFAULTS = Beam()
"""Beam search with every value as tuned with the LM."""


@dataclass(frozen=True)
class Hypothesis:
    transcript: Transcript
    """Word confidences here are the product of the letters' peak posteriors, as in greedy decoding."""
    evidence: list[tuple[float, float]]
    """Per word, what :class:`Calibration` turns into its confidence."""


class _BoostedLM(LM):
    """The KenLM model plus a bonus for hotwords; words past the LM's dictionary score as ``<unk>``."""

    def __init__(self, lm: KenLM, unknown: int, boosts: dict[int, float]):
        LM.__init__(self)
        self.lm, self.unknown, self.boosts = lm, unknown, boosts

    def start(self, start_with_nothing: bool):
        return self.lm.start(start_with_nothing)

    def score(self, state, token_index: int):
        state, score = self.lm.score(state, min(token_index, self.unknown))
        return state, score + self.boosts.get(token_index, 0.0)

    def finish(self, state):
        return self.lm.finish(state)


class _GrammarLM(LM):
    """An utterance is one or more of the phrases (lists of word indices), one after another: a word that
    continues none scores :data:`_OUTSIDE_GRAMMAR`, and so does a sentence ending inside a phrase."""

    def __init__(self, phrases: list[list[int]]):
        LM.__init__(self)
        self.children: list[dict[int, int]] = [{}]
        self.ends: set[int] = set()
        for phrase in phrases:
            node = 0
            for word in phrase:
                if word not in self.children[node]:
                    self.children[node][word] = len(self.children)
                    self.children.append({})
                node = self.children[node][word]
            self.ends.add(node)
        self.nodes: dict[LMState, int] = {}
        """Each search state's place in the phrases' word tree; -1 once it left them."""

    def start(self, start_with_nothing: bool):
        state = LMState()
        self.nodes[state] = 0
        return state

    def score(self, state, token_index: int):
        node = self.nodes[state]
        after = -1 if node < 0 else self.children[node].get(token_index, -1)
        if after < 0 and node in self.ends:
            after = self.children[0].get(token_index, -1)
        child = state.child(token_index)
        self.nodes[child] = after
        return child, 0.0 if after >= 0 else _OUTSIDE_GRAMMAR

    def finish(self, state):
        return state, 0.0 if self.nodes[state] in self.ends else _OUTSIDE_GRAMMAR


_OUTSIDE_GRAMMAR = -1e4
"""In log10 units: no acoustic evidence outweighs it."""
_GRAMMAR_THRESHOLD = 1e3
"""A grammar's search prunes by the beam's size alone, keeps the widest beam and skips no blank frames (its lexicon
is small): speech far from every phrase must still come out as the nearest one, whose letters the model may not
have heard, and alignments of the letters it did hear fill a narrower beam before those get a frame."""


def spelled(word: str) -> bool:
    """Whether the model's alphabet can spell ``word`` (one word, no spaces)."""
    return bool(word) and " " not in word and all(c in ALPHABET for c in word)


class BeamDecoder:
    """Decodes ``(frames, classes)`` log-probabilities into n-best transcripts; safe to share between threads."""

    def __init__(self, lm: LanguageModel | None = None, vocabulary: tuple[str, ...] = ()):
        """Without ``lm``, the search keeps to the lexicon ``vocabulary`` with no language model."""
        self.lm = lm
        self.defaults = lm.defaults if lm else DecodingDefaults(alpha=0.0, beta=0.0)
        self.calibration = lm.calibration if lm else Calibration()
        self.words = [w for w in (lm.vocabulary if lm else vocabulary) if spelled(w)]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.unknown = len(self.words)
        self.kenlm = None
        if lm is not None:
            dictionary = Dictionary()
            for word in (*self.words, UNKNOWN):
                dictionary.add_entry(word)
            with _quiet_stderr():  # KenLM draws a progress bar on the process's stderr
                self.kenlm = KenLM(str(lm.arpa), dictionary)
        self._entries = [([*encode(w), SPACE], i, self._unigram(i)) for i, w in enumerate(self.words)]
        self._lexicon = self._trie(())
        self._extended: tuple[tuple, Trie] | None = None
        """The last trie built with hotwords the lexicon lacks, and which ones: one at a time, since each
        holds a whole copy of the lexicon (flashlight's Python binding cannot share its nodes safely)."""
        self._building = threading.Lock()

    def _unigram(self, index: int) -> float:
        if self.kenlm is None:
            return 0.0
        return self.kenlm.score(self.kenlm.start(False), min(index, self.unknown))[1]

    def unigram(self, word: str) -> float:
        """The LM's log10 probability of ``word`` opening a sentence; ``<unk>``'s for words it does not know."""
        return self._unigram(self.index.get(word, self.unknown))

    def _trie(self, new_words: tuple[tuple[int, str, float], ...]) -> Trie:
        """The lexicon, plus hotwords it lacks; those it has get their boost from the LM alone."""
        trie = Trie(NUM_CLASSES, SPACE)
        for spelling, i, score in self._entries:
            trie.insert(spelling, i, score)
        for i, word, boost in new_words:
            trie.insert([*encode(word), SPACE], i, self._unigram(i) + boost)
        trie.smear(SmearingMode.MAX)
        return trie

    def _trie_with(self, new_words: tuple[tuple[int, str, float], ...]) -> Trie:
        """The lexicon's trie, or one extended by ``new_words``: built once while requests repeat them, and
        one at a time, so that their memory stays bounded however many distinct sets arrive."""
        if not new_words:
            return self._lexicon
        with self._building:
            if self._extended is None or self._extended[0] != new_words:
                self._extended = None  # freed before its successor is built
                self._extended = (new_words, self._trie(new_words))
            return self._extended[1]

    def hypotheses(
        self,
        log_probs: torch.Tensor,
        frame_seconds: float,
        duration: float | None = None,
        options: Beam = LM_DEFAULTS,
    ) -> list[Hypothesis]:
        """The final beam, best first: at least ``options.alternatives`` where the beam holds that many."""
        d = self.defaults
        emissions = mark_pauses(log_probs.detach().float().cpu(), frame_seconds)
        best = emissions.argmax(-1)
        if not ((best != BLANK) & (best != SPACE)).any():
            # The LM prices an empty sentence far below a short one ("a"), so where the model heard no
            # letter at all, the search would put a word on silence: the acoustics alone decide there.
            return [Hypothesis(Transcript(""), [])]
        if long := [w for p in (options.hotwords, options.grammar) for w in p if len(w) > MAX_HOTWORD_LETTERS]:
            raise ValueError(f"hotwords may have at most {MAX_HOTWORD_LETTERS} letters, not {len(long[0])}")
        closed = bool(options.grammar) and UNKNOWN_PHRASE not in options.grammar
        trie, lm, names = self._grammar(options.grammar) if closed else self._vocabulary(options)
        decoder = LexiconDecoder(
            LexiconDecoderOptions(
                beam_size=MAX_BEAM_SIZE if closed else options.beam_size or d.beam_size,
                beam_size_token=NUM_CLASSES,
                beam_threshold=_GRAMMAR_THRESHOLD if closed else d.beam_threshold,
                lm_weight=d.alpha if options.alpha is None else options.alpha,
                word_score=d.beta if options.beta is None else options.beta,
                unk_score=-math.inf,
                sil_score=0.0,
                log_add=True,  # merged prefixes sum their paths' probabilities: CTC prefix search
                criterion_type=CriterionType.CTC,
            ),
            trie,
            lm,
            SPACE,
            BLANK,
            self.unknown,
            [],
            False,
        )
        kept = kept_frames(emissions, 1.0 if closed else d.blank_skip)  # a grammar's search keeps every frame
        padded = torch.cat((emissions[kept], _END_OF_WORD)).contiguous()
        frames = len(kept)
        keep = max(options.alternatives, _EVIDENCE_HYPOTHESES)
        results = []
        for result in decoder.decode(padded.data_ptr(), *padded.shape):
            tokens = result.tokens  # each access copies the whole path into a new list
            if tokens[frames + 1] == SPACE:  # the others end inside a word
                results.append((result, tokens))
                if len(results) == keep:
                    break
        if not results:
            return [Hypothesis(Transcript(""), [])]
        scores_by_frame = emissions.numpy()
        allowed = {w for phrase in options.grammar for w in phrase.split()}
        spans = []
        for result, tokens in results:
            path = restored(np.asarray(tokens[1 : frames + 1]), kept, len(emissions))  # the first is the start state
            posteriors = np.exp(scores_by_frame[np.arange(len(emissions)), path])
            words = path_words(path, posteriors, frame_seconds, duration)
            spoken = [names(i) for i in result.words if i >= 0]
            if [w.word for w in words] != spoken:
                raise RuntimeError(f"decoder path spells {[w.word for w in words]}, its words are {spoken}")
            if options.grammar and not closed:
                words = [w if w.word in allowed else replace(w, word=UNKNOWN_PHRASE) for w in words]
            spans.append(words)
        scores = np.array([r.score for r, _ in results])
        shares = np.exp(scores - scores.max())
        shares /= shares.sum()
        return [
            Hypothesis(
                Transcript(" ".join(w.word for w in words), words, float(share)),
                [(_agreement(w, spans, shares), math.log(max(w.confidence, 1e-30)) / len(w.word)) for w in words],
            )
            for words, share in zip(spans, shares, strict=True)
        ]

    def _vocabulary(self, options: Beam) -> tuple[Trie, LM, Callable[[int], str]]:
        """The lexicon (with the hotwords it lacks) and the LM (with their boost), and each word index's word."""
        boost = self.defaults.hotword_boost if options.hotword_boost is None else options.hotword_boost
        asked = dict.fromkeys(w for w in options.hotwords if spelled(w))
        hotwords = tuple((self.index.get(w, self.unknown + 1 + j), w, boost) for j, w in enumerate(asked))
        new_words = {i: w for i, w, _ in hotwords if i > self.unknown}
        lm = self.kenlm or ZeroLM()
        if hotwords and self.kenlm is not None:
            lm = _BoostedLM(self.kenlm, self.unknown, {i: b for i, _, b in hotwords})
        trie = self._trie_with(tuple(h for h in hotwords if h[0] in new_words))
        return trie, lm, lambda i: self.words[i] if i < self.unknown else new_words[i]

    @staticmethod
    def _grammar(phrases: tuple[str, ...]) -> tuple[Trie, LM, Callable[[int], str]]:
        """A lexicon of the phrases' words alone, and the grammar's LM in place of the n-gram model."""
        spellable = [[w for w in phrase.split() if spelled(w)] for phrase in phrases]
        words = list(dict.fromkeys(w for phrase in spellable for w in phrase))
        index = {w: i for i, w in enumerate(words)}
        trie = Trie(NUM_CLASSES, SPACE)
        for i, word in enumerate(words):
            trie.insert([*encode(word), SPACE], i, 0.0)
        trie.smear(SmearingMode.MAX)
        return trie, _GrammarLM([[index[w] for w in phrase] for phrase in spellable if phrase]), words.__getitem__

    def decode(
        self,
        log_probs: torch.Tensor,
        frame_seconds: float,
        duration: float | None = None,
        options: Beam = LM_DEFAULTS,
    ) -> list[Transcript]:
        """Up to ``options.alternatives`` transcripts, best first, their word confidences calibrated."""
        found = self.hypotheses(log_probs, frame_seconds, duration, options)[: max(1, options.alternatives)]
        return [
            replace(
                h.transcript,
                words=[
                    replace(w, confidence=self.calibration(e))
                    for w, e in zip(h.transcript.words, h.evidence, strict=True)
                ],
            )
            for h in found
        ]


def kept_frames(log_probs: torch.Tensor, blank_skip: float) -> np.ndarray:
    """Indices of the ``(frames, classes)`` frames the search needs: all but those whose blank posterior
    exceeds ``blank_skip``, of which the first of each run stays, so that a letter said twice in a row
    ("ll") is still two letters apart."""
    sure = (log_probs[:, BLANK] > math.log(blank_skip)).numpy()
    first_of_run = sure & ~np.concatenate(([False], sure[:-1]))
    return np.flatnonzero(~sure | first_of_run)


def restored(path: np.ndarray, kept: np.ndarray, frames: int) -> np.ndarray:
    """A label path over the ``kept`` frames, spread back over all ``frames``: the skipped ones are blank,
    but inside one letter's run (the same letter on both sides of the gap), where they continue it."""
    full = np.full(frames, BLANK, dtype=path.dtype)
    full[kept] = path
    after = np.searchsorted(kept, np.arange(frames))  # for a skipped frame, the first kept frame after it
    gap = (after > 0) & (after < len(kept))
    gap[kept] = False
    before_label, after_label = path[np.maximum(after - 1, 0)], path[np.minimum(after, len(kept) - 1)]
    inside = gap & (before_label == after_label) & (before_label != BLANK)
    full[inside] = before_label[inside]
    return full


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 itself: C++ code writes there, past Python's ``sys.stderr``."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as quiet:
            os.dup2(quiet.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _agreement(word: Word, spans: list[list[Word]], shares: np.ndarray) -> float:
    """The share of the beam's probability whose hypotheses say ``word`` at an overlapping time."""
    return float(
        sum(
            share
            for share, words in zip(shares, spans, strict=True)
            if any(w.word == word.word and w.start < word.end and word.start < w.end for w in words)
        )
    )

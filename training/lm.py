"""Word n-gram language models in ARPA format, estimated with interpolated modified Kneser-Ney.

Written here rather than run through KenLM's ``lmplz`` because that needs a C++ build with Boost,
and the synthetic corpus's text (about 15,000 sentences) takes seconds in Python. The ARPA file it
writes loads in KenLM like any other; for LibriSpeech's 800-million-word LM corpus use ``lmplz``
and import its ARPA file with ``python -m training lm --arpa``.

Lower orders use continuation counts (how many words precede an n-gram) except for n-grams that
start with ``<s>``, which nothing can precede; each order has three discounts from its
count-of-counts (Chen and Goodman); unigrams are interpolated with the uniform distribution over
the vocabulary and ``<unk>``. Pruned n-grams give their mass back through their context's
backoff weight, so every context's distribution still sums to one.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from asr.atomic import replaced

START, END, UNKNOWN = "<s>", "</s>", "<unk>"
_NEVER = -99.0
"""log10 probability ARPA files give ``<s>``, which is never predicted."""

NGram = tuple[str, ...]


@dataclass(frozen=True)
class NGramModel:
    """Probabilities (log10) of every kept n-gram and backoff weights (log10) of every context."""

    order: int
    log_probs: list[dict[NGram, float]]
    """``log_probs[n - 1]``: the n-grams of order n."""
    backoffs: dict[NGram, float]

    @property
    def vocabulary(self) -> list[str]:
        """The words the model knows, without the sentence markers and ``<unk>``."""
        return sorted(w for (w,) in self.log_probs[0] if w not in (START, END, UNKNOWN))

    def log10_prob(self, word: str, context: NGram) -> float:
        """log10 P(word | context) by the ARPA backoff rule, as KenLM computes it."""
        context = context[len(context) - self.order + 1 :] if self.order > 1 else ()
        penalty = 0.0
        while True:
            gram = (*context, word)
            if gram in self.log_probs[len(gram) - 1]:
                return penalty + self.log_probs[len(gram) - 1][gram]
            if not context:
                return penalty + self.log_probs[0][(UNKNOWN,)]
            penalty += self.backoffs.get(context, 0.0)
            context = context[1:]


def _discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """D1, D2, D3+ from the count-of-counts; fixed values where the corpus is too small to tell."""
    n = Counter(min(c, 4) for c in counts)
    if not all(n[k] for k in (1, 2, 3, 4)):
        return 0.5, 1.0, 1.5
    y = n[1] / (n[1] + 2 * n[2])
    discounts = (1 - 2 * y * n[2] / n[1], 2 - 3 * y * n[3] / n[2], 3 - 4 * y * n[4] / n[3])
    return discounts if all(0 < d < k for k, d in enumerate(discounts, 1)) else (0.5, 1.0, 1.5)


def estimate(
    sentences: Iterable[str],
    order: int = 3,
    prune: int = 0,
    vocabulary: Iterable[str] = (),
) -> NGramModel:
    """An interpolated modified Kneser-Ney model of ``sentences`` (normalised, space-separated words).

    ``prune``: drop n-grams of the highest order seen this many times or fewer (0 keeps all), which
    shrinks the file several-fold at little cost in perplexity. ``vocabulary``: more words to know
    (a dictionary's), which get the uniform share of unigram mass that unseen words get, so that a
    lexicon decoder can spell them at all.
    """
    if order < 1:
        raise ValueError("order must be at least 1")
    raw: list[Counter[NGram]] = [Counter() for _ in range(order)]
    for sentence in sentences:
        tokens = (START, *sentence.split(), END)
        if len(tokens) == 2:
            continue
        for n in range(1, order + 1):
            for i in range(len(tokens) - n + 1):
                raw[n - 1][tokens[i : i + n]] += 1
    if not raw[0]:
        raise ValueError("no sentences to estimate a language model from")

    counts: list[Counter[NGram]] = [Counter() for _ in range(order)]
    counts[-1] = raw[-1]
    for n in range(order - 1, 0, -1):
        for gram in raw[n]:
            counts[n - 1][gram[1:]] += 1  # continuation: how many distinct words precede it
        for gram, count in raw[n - 1].items():
            if gram[0] == START:
                counts[n - 1][gram] = count
    counts[0].pop((START,), None)
    extra = sorted({(w,) for w in vocabulary if w} - counts[0].keys() - {(START,), (END,), (UNKNOWN,)})

    uniform = 1 / (len(counts[0]) + len(extra) + 1)  # <unk> too
    log_probs: list[dict[NGram, float]] = []
    lower: dict[NGram, float] = {}
    gammas: dict[NGram, float] = {}
    for n in range(1, order + 1):
        d1, d2, d3 = _discounts(counts[n - 1].values())
        totals: dict[NGram, list[float]] = defaultdict(lambda: [0, 0, 0, 0])  # total, N1, N2, N3+
        for gram, count in counts[n - 1].items():
            t = totals[gram[:-1]]
            t[0] += count
            t[min(count, 3)] += 1
        gammas.update({h: (d1 * t[1] + d2 * t[2] + d3 * t[3]) / t[0] for h, t in totals.items()})
        probs = {}
        for gram, count in counts[n - 1].items():
            if n == order and count <= prune:
                continue
            h = gram[:-1]
            discounted = (count - (d1, d2, d3)[min(count, 3) - 1]) / totals[h][0]
            below = uniform if n == 1 else _backed_off(gram[1:], lower, gammas)
            probs[gram] = discounted + gammas[h] * below
        if n == 1:
            probs.update(dict.fromkeys([*extra, (UNKNOWN,)], gammas[()] * uniform))
        lower.update(probs)
        log_probs.append(probs)

    backoffs = {}
    for n in range(1, order):
        kept: dict[NGram, list[float]] = defaultdict(lambda: [0.0, 0.0])
        for gram, p in log_probs[n].items():
            k = kept[gram[:-1]]
            k[0] += p
            k[1] += _backed_off(gram[1:], lower, gammas)
        for h, (p_kept, lower_kept) in kept.items():
            backoffs[h] = math.log10(max(1 - p_kept, 1e-12) / max(1 - lower_kept, 1e-12))
    return NGramModel(
        order,
        [{g: math.log10(p) for g, p in level.items()} for level in log_probs],
        backoffs,
    )


def _backed_off(gram: NGram, probs: dict[NGram, float], gammas: dict[NGram, float]) -> float:
    """P(gram[-1] | gram[:-1]) from the probabilities estimated so far, backing off where unseen."""
    weight = 1.0
    while gram not in probs:
        weight *= gammas.get(gram[:-1], 1.0)
        gram = gram[1:] if len(gram) > 1 else (UNKNOWN,)
    return weight * probs[gram]


def write_arpa(model: NGramModel, path: Path) -> None:
    with replaced(path) as temporary, temporary.open("w") as out:
        out.write("\\data\\\n")
        for n, level in enumerate(model.log_probs, 1):
            out.write(f"ngram {n}={len(level) + (n == 1)}\n")
        for n, level in enumerate(model.log_probs, 1):
            out.write(f"\n\\{n}-grams:\n")
            if n == 1:
                out.write(f"{_NEVER}\t{START}\t{model.backoffs.get((START,), 0.0):.6f}\n")
            for gram, log_prob in level.items():
                backoff = model.backoffs.get(gram)
                tail = f"\t{backoff:.6f}" if backoff is not None and n < model.order else ""
                out.write(f"{log_prob:.6f}\t{' '.join(gram)}{tail}\n")
        out.write("\n\\end\\\n")


def read_arpa(path: Path) -> NGramModel:
    """An ARPA file from anywhere (this module, KenLM's ``lmplz``, SRILM) as an :class:`NGramModel`."""
    log_probs: list[dict[NGram, float]] = []
    backoffs: dict[NGram, float] = {}
    n = 0
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line.startswith("\\") and line.endswith("-grams:"):
                n = int(line[1:].split("-")[0])
                log_probs.append({})
            elif n and line and not line.startswith("\\"):
                fields = line.split("\t") if "\t" in line else line.split()
                if "\t" in line:
                    gram = tuple(fields[1].split())
                    backoff = fields[2] if len(fields) > 2 else None
                else:
                    gram, backoff = tuple(fields[1 : 1 + n]), (fields[1 + n] if len(fields) > 1 + n else None)
                log_probs[n - 1][gram] = float(fields[0])
                if backoff is not None:
                    backoffs[gram] = float(backoff)
    if not log_probs:
        raise ValueError(f"{path} is not an ARPA file: no n-gram sections")
    return NGramModel(len(log_probs), log_probs, backoffs)


def perplexity(model: NGramModel, sentences: Iterable[str]) -> float:
    """Per-token perplexity, ``</s>`` included, as KenLM's ``query`` reports it."""
    total, tokens = 0.0, 0
    for sentence in sentences:
        words = [*sentence.split(), END]
        context: NGram = (START,)
        for word in words:
            total += model.log10_prob(word, context)
            context = (*context, word)
            tokens += 1
    return 10 ** (-total / max(tokens, 1))


def held_out_report(model: NGramModel, sentences: Iterable[str]) -> dict[str, float]:
    """How well the LM knows sentences it was not estimated from: perplexity and the share of unknown words."""
    sentences = sorted(sentences)
    known = set(model.vocabulary)
    tokens = [w for s in sentences for w in s.split()]
    return {
        "perplexity": round(perplexity(model, sentences), 1),
        "oov_rate": round(sum(w not in known for w in tokens) / max(len(tokens), 1), 4),
    }

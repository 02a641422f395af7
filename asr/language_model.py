"""The LM bundle: an n-gram ARPA file, its vocabulary, and the decoding values tuned for it, in one JSON.

``python -m training lm`` writes a bundle and ``tune-lm`` stores its tuned values; :mod:`asr.beam` decodes with it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from asr.atomic import replaced

FORMAT = "asr-lm/1"
DEFAULT_LM = Path(__file__).parent / "models" / "default-lm.json"


@dataclass(frozen=True)
class DecodingDefaults:
    """A bundle's decoding values: these until ``python -m training tune-lm`` stores tuned ones."""

    beam_size: int = 128
    alpha: float = 1.5
    beta: float = 0.0
    hotword_boost: float = 5.0
    """On sitting 17's model, 5 brought out 19 of the 43 unseen words the beam missed on dev, 4 only 17, and
    moved the WER of the rest of dev by one word at most (``python -m bench.decoding``)."""
    beam_threshold: float = 10.0
    """Hypotheses this far (in score) below the best are dropped even when the beam has room. On sitting 18's
    model, 10 took 35% less time than 15 at beam 128 for 0.3 points of WER on dev and 0.4 on the real dev set
    (``python -m bench.beam_options``)."""
    blank_skip: float = 0.999
    """Frames whose blank posterior exceeds this are left out of the search (:func:`asr.beam.kept_frames`);
    1 keeps every frame. On sitting 18's model, 0.999 took 11% less time than 1 with the same text."""


@dataclass(frozen=True)
class Calibration:
    """Logistic regression from a word's evidence to the probability that it is right, fitted on dev.

    Evidence: the share of the final beam's probability that says the same word at the same time,
    and the mean log posterior of its letters. The share enters as log-odds (Platt scaling), which
    straightens its S-shaped relation to accuracy. Unfitted, the share alone is the confidence.
    """

    weights: tuple[float, float, float] | None = None

    @staticmethod
    def inputs(evidence: tuple[float, float]) -> tuple[float, float]:
        share = min(max(evidence[0], 1e-4), 1 - 1e-4)
        return math.log(share / (1 - share)), evidence[1]

    def __call__(self, evidence: tuple[float, float]) -> float:
        if self.weights is None:
            return evidence[0]
        z = sum(w * x for w, x in zip(self.weights, (*self.inputs(evidence), 1.0), strict=True))
        return 1 / (1 + math.exp(-z))


@dataclass(frozen=True)
class LanguageModel:
    """An n-gram LM bundle: its ARPA file, vocabulary, and the decoding values tuned for it."""

    arpa: Path
    vocabulary: tuple[str, ...]
    defaults: DecodingDefaults = DecodingDefaults()
    calibration: Calibration = Calibration()
    about: dict = field(default_factory=dict, compare=False)
    """Provenance and the measurements behind the defaults (``python -m training lm`` and ``tune-lm``)."""

    @classmethod
    def load(cls, path: Path | str) -> LanguageModel:
        """Read a bundle's JSON; its ``arpa`` is relative to the JSON's folder."""
        path = Path(path)
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not an LM bundle of format {FORMAT!r} (it says {meta.get('format')!r})")
        weights = meta.get("calibration", {}).get("weights")
        return cls(
            path.parent / meta["arpa"],
            tuple(meta["vocabulary"]),
            DecodingDefaults(**meta.get("decoding", {})),
            Calibration(tuple(weights) if weights else None),
            {k: v for k, v in meta.items() if k not in ("format", "arpa", "vocabulary", "decoding", "calibration")},
        )

    def save(self, path: Path) -> None:
        meta = {
            "format": FORMAT,
            "arpa": os.path.relpath(self.arpa, path.parent),
            **self.about,
            "decoding": asdict(self.defaults),
            "calibration": {"weights": list(self.calibration.weights) if self.calibration.weights else None},
            "vocabulary": list(self.vocabulary),
        }
        with replaced(path) as temporary:
            temporary.write_text(json.dumps(meta, indent=1) + "\n")

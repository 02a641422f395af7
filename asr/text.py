"""The character alphabet and the normaliser that maps English text onto it."""

from __future__ import annotations

import re
import unicodedata

BLANK = 0
ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"
"""The 28 symbols the model emits; index ``i`` in this string is class ``i + 1``."""
NUM_CLASSES = len(ALPHABET) + 1
SPACE = ALPHABET.index(" ") + 1
"""The class that separates words."""

_INDEX = {char: i + 1 for i, char in enumerate(ALPHABET)}


def encode(text: str) -> list[int]:
    """Class indices of an already normalised transcript."""
    try:
        return [_INDEX[char] for char in text]
    except KeyError as error:
        raise ValueError(f"character {error.args[0]!r} is not in the alphabet; normalise() the text first") from None


def decode(indices: list[int]) -> str:
    """Inverse of :func:`encode`; blanks are dropped."""
    return "".join(ALPHABET[i - 1] for i in indices if i != BLANK)


_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand")]
_ORDINAL_WORDS = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}


def number_to_words(n: int) -> str:
    """Cardinal English words for a non-negative integer, without 'and' (as LibriSpeech transcribes)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_to_words(rest)}" if rest else "")
    for scale, name in _SCALES:
        if n >= scale:
            high, rest = divmod(n, scale)
            return f"{number_to_words(high)} {name}" + (f" {number_to_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def ordinal_to_words(n: int) -> str:
    words = number_to_words(n).split()
    last = words[-1]
    if last in _ORDINAL_WORDS:
        words[-1] = _ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def _year_to_words(n: int) -> str:
    high, low = divmod(n, 100)
    if low == 0:
        return f"{number_to_words(high)} hundred"
    return f"{number_to_words(high)} {'oh ' + _ONES[low] if low < 10 else number_to_words(low)}"


ABBREVIATIONS = {
    "mr": "mister",
    "mrs": "missus",
    "ms": "miss",
    "dr": "doctor",
    "prof": "professor",
    "st": "saint",
    "jr": "junior",
    "sr": "senior",
    "mt": "mount",
    "capt": "captain",
    "col": "colonel",
    "gen": "general",
    "lt": "lieutenant",
    "sgt": "sergeant",
    "rev": "reverend",
    "vs": "versus",
    "etc": "et cetera",
}
"""Said in full where written with a full stop. "No." is "number" only before a number: "I said no." is a no."""
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "=": " equals ", "@": " at "}
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}

ABBREVIATION_RE = re.compile(r"\b(" + "|".join(ABBREVIATIONS) + r")\.(?=\s|$)", re.IGNORECASE)
"""An abbreviation of :data:`ABBREVIATIONS` with its full stop, which ends no sentence."""
_NUMBER_ABBREVIATION_RE = re.compile(r"\bno\.(?=\s*\d)", re.IGNORECASE)
_CURRENCY_RE = re.compile(r"([$£€])\s?(\d[\d,]*)(?:\.(\d{1,2}))?\b")
_SCALED_CURRENCY_RE = re.compile(
    r"([$£€])\s?(\d[\d,]*(?:\.\d+)?)\s+(thousand|million|billion|trillion)\b", re.IGNORECASE
)
_ORDINAL_RE = re.compile(r"\b(\d+)(st|nd|rd|th)\b", re.IGNORECASE)
_DECIMAL_RE = re.compile(r"\b(\d+)\.(\d+)\b")
_NUMBER_RE = re.compile(r"\d[\d,]*")
_LONG_NUMBER_RE = re.compile(r"\d(?:,?\d){15,}")
"""Sixteen digits or more: past what anyone reads as one number (and past int()'s 4,300-digit limit)."""
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def _currency(match: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[match.group(1)]
    whole = int(match.group(2).replace(",", ""))
    words = f"{number_to_words(whole)} {one if whole == 1 else many}"
    if match.group(3):
        cents = int(match.group(3).ljust(2, "0"))
        words += f" {number_to_words(cents)} {sub_one if cents == 1 else sub_many}"
    return f" {words} "


def _scaled_currency(match: re.Match[str]) -> str:
    """ "$1.5 billion" is said "one point five billion dollars"."""
    return f" {match.group(2)} {match.group(3)} {_CURRENCIES[match.group(1)][1]} "


def _cardinal(match: re.Match[str]) -> str:
    digits = match.group(0).rstrip(",")
    if "," not in digits and len(digits) == 4 and 1100 <= int(digits) <= 2099 and int(digits) % 1000 >= 100:
        return f" {_year_to_words(int(digits))} "
    if len(digits) > 1 and digits.startswith("0"):
        return " " + " ".join(_ONES[int(d)] for d in digits if d != ",") + " "
    return f" {number_to_words(int(digits.replace(',', '')))} "


def normalise(text: str) -> str:
    """Map arbitrary English text onto :data:`ALPHABET`, spelling out what a speaker would say.

    Digits become words (years the way they are read, ordinals, decimals, currency),
    common abbreviations are expanded, accents are stripped, apostrophes are kept
    inside words only, and everything else becomes a single space.
    """
    text = unicodedata.normalize("NFKD", text.translate(_APOSTROPHES))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = _NUMBER_ABBREVIATION_RE.sub("number", text)
    text = ABBREVIATION_RE.sub(lambda m: ABBREVIATIONS[m.group(1).lower()], text)
    text = _LONG_NUMBER_RE.sub(lambda m: " " + " ".join(_ONES[int(d)] for d in m.group(0) if d != ",") + " ", text)
    text = _SCALED_CURRENCY_RE.sub(_scaled_currency, text)
    text = _CURRENCY_RE.sub(_currency, text)
    text = _ORDINAL_RE.sub(lambda m: f" {ordinal_to_words(int(m.group(1)))} ", text)
    text = _DECIMAL_RE.sub(
        lambda m: f" {number_to_words(int(m.group(1)))} point {' '.join(_ONES[int(d)] for d in m.group(2))} ", text
    )
    text = _NUMBER_RE.sub(_cardinal, text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = text.lower()
    text = re.sub(r"[^a-z']+", " ", text)
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)
    return " ".join(text.split())

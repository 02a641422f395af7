"""A small command-and-number grammar: the text of the vertical slice's tiny corpus.

Its sentences are short and its vocabulary closed, so a small model
trained on a few CPU-minutes of espeak-ng speech learns it; the README says so plainly.
"""

from __future__ import annotations

import random

from asr.text import number_to_words

ROOMS = ["kitchen", "bedroom", "living room", "garage", "office", "bathroom", "garden", "hallway"]
DEVICES = ["lights", "lamp", "fan", "heater", "radio", "television", "oven", "door"]
COLOURS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple"]
OBJECTS = ["box", "ball", "cup", "book", "chair", "table"]
PLACES = ["left", "right", "top", "bottom", "middle"]
NAMES = ["alice", "bob", "carol", "david", "emma", "frank", "grace", "henry"]
CITIES = ["london", "paris", "tokyo", "berlin", "madrid", "boston", "chicago", "sydney"]
UNITS = ["seconds", "minutes", "hours"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def _number(rng: random.Random) -> str:
    return number_to_words(rng.randrange(100))


def _digits(rng: random.Random) -> str:
    return " ".join(number_to_words(rng.randrange(10)) for _ in range(rng.randint(3, 5)))


_TEMPLATES = [
    lambda r: f"turn {r.choice(['on', 'off'])} the {r.choice(ROOMS)} {r.choice(DEVICES)}",
    lambda r: f"set the {r.choice(DEVICES)} to {_number(r)} percent",
    lambda r: f"set a timer for {_number(r)} {r.choice(UNITS)}",
    lambda r: f"move the {r.choice(COLOURS)} {r.choice(OBJECTS)} to the {r.choice(PLACES)}",
    lambda r: f"call {r.choice(NAMES)} on {r.choice(DAYS)}",
    lambda r: f"dial {_digits(r)}",
    lambda r: f"what is the weather in {r.choice(CITIES)}",
    lambda r: f"open the {r.choice(ROOMS)} door",
    lambda r: f"play music in the {r.choice(ROOMS)}",
    lambda r: f"remind {r.choice(NAMES)} to call {r.choice(NAMES)} at {_number(r)}",
    lambda r: f"put the {r.choice(OBJECTS)} on the {r.choice(COLOURS)} {r.choice(OBJECTS)}",
    lambda r: f"{_number(r)} {r.choice(COLOURS)} {r.choice(OBJECTS)}s",
]


def sentences(count: int, seed: int) -> list[str]:
    """``count`` distinct sentences, the same for the same seed."""
    rng = random.Random(seed)
    seen: dict[str, None] = {}
    while len(seen) < count:
        seen.setdefault(rng.choice(_TEMPLATES)(rng), None)
    return list(seen)

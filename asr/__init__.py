"""Shared speech-recognition core: text, features, model, decoding and checkpoints.

Training and serving both import from here and from nowhere else, so a model
trained by ``training`` is read by ``service`` with exactly the same pipeline.
"""

__version__ = "0.1.0"

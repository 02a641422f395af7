"""The speech-recognition HTTP service. It imports the shared core ``asr``, never ``training``."""

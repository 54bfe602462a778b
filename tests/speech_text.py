"""What the test recordings say, and the normalisation transcripts are compared under."""

from __future__ import annotations

JFK_REFERENCE = "and so my fellow americans ask not what your country can do for you ask what you can do for your country"
JFK_PHRASE = "ask not what your country can do for you"


def normalise(text: str) -> str:
    """Lowercase words: punctuation becomes a space, runs of spaces one space."""
    return " ".join("".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split())

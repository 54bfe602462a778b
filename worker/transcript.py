"""The transcript model: words, segments and the transcript that holds them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass
class Word:
    start: float
    end: float
    text: str
    probability: float = 1.0


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)

    def shifted(self, offset: float, new_id: int | None = None) -> "Segment":
        """A copy moved by `offset` seconds (used when stitching chunks)."""
        return Segment(
            id=self.id if new_id is None else new_id,
            start=round(self.start + offset, 3),
            end=round(self.end + offset, 3),
            text=self.text,
            words=[replace(w, start=round(w.start + offset, 3), end=round(w.end + offset, 3)) for w in self.words],
        )

    def clamped(self, length: float, epsilon: float = 0.02) -> "Segment | None":
        """Kept inside [0, length] (a chunk of that length): Whisper sometimes runs a timestamp, or a
        hallucination, past the audio it was given, which would overlap the next chunk after stitching.
        None when the segment starts within `epsilon` of the end."""
        if self.start >= length - epsilon:
            return None
        words = [
            Word(max(0.0, w.start), min(w.end, length), w.text, w.probability)
            for w in self.words
            if w.start < length - epsilon
        ]
        return Segment(self.id, max(0.0, self.start), min(self.end, length), self.text, words)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Segment":
        return cls(
            id=int(data.get("id", 0)),
            start=float(data["start"]),
            end=float(data["end"]),
            text=str(data["text"]),
            words=[Word(**w) for w in data.get("words") or []],
        )


@dataclass
class Transcript:
    segments: list[Segment] = field(default_factory=list)
    language: str | None = None
    duration: float = 0.0
    model: str = ""
    backend: str = ""
    timings: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    def renumbered(self) -> "Transcript":
        for i, seg in enumerate(self.segments):
            seg.id = i
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["text"] = self.text
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Transcript":
        return cls(
            segments=[Segment.from_dict(s) for s in data.get("segments", [])],
            language=data.get("language"),
            duration=float(data.get("duration") or 0.0),
            model=data.get("model", ""),
            backend=data.get("backend", ""),
            timings=dict(data.get("timings") or {}),
            source=data.get("source"),
        )

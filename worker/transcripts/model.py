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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Word":
        """Ours ({"text", ...}) or openai-whisper's ({"word", ...}, as JSON exports write it)."""
        text = data["text"] if "text" in data else data["word"]
        return cls(float(data["start"]), float(data["end"]), str(text), float(data.get("probability", 1.0)))


@dataclass
class Segment:
    id: int
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None  # a Speaker.id of the transcript ("S1"), None: no speaker

    def shifted(self, offset: float, new_id: int | None = None) -> "Segment":
        """A copy moved by `offset` seconds (used when stitching chunks)."""
        return Segment(
            id=self.id if new_id is None else new_id,
            start=round(self.start + offset, 3),
            end=round(self.end + offset, 3),
            text=self.text,
            words=[replace(w, start=round(w.start + offset, 3), end=round(w.end + offset, 3)) for w in self.words],
            speaker=self.speaker,
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
        return Segment(self.id, max(0.0, self.start), min(self.end, length), self.text, words, self.speaker)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Segment":
        return cls(
            id=int(data.get("id", 0)),
            start=float(data["start"]),
            end=float(data["end"]),
            text=str(data["text"]),
            words=[Word.from_dict(w) for w in data.get("words") or []],
            speaker=data.get("speaker_id", data.get("speaker")),  # JSON exports: "speaker" is the name
        )


@dataclass
class Speaker:
    """Who speaks: `id` is what segments refer to; renaming changes `name` only. A speaker matched to a known
    voice of the library carries its `voice_id` and the match `confidence` (cosine similarity, 0..1)."""

    id: str
    name: str
    voice_id: int | None = None
    confidence: float | None = None
    embedding: list[float] | None = None  # the speaker's averaged voice embedding (never audio)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Speaker":
        embedding = data.get("embedding")
        return cls(
            id=str(data["id"]),
            name=str(data.get("name") or data["id"]),
            voice_id=data.get("voice_id"),
            confidence=data.get("confidence"),
            embedding=[float(x) for x in embedding] if embedding else None,
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
    speakers: list[Speaker] = field(default_factory=list)

    def speaker_name(self, segment: Segment) -> str | None:
        """The display name of the segment's speaker (None: no speaker)."""
        if segment.speaker is None:
            return None
        for speaker in self.speakers:
            if speaker.id == segment.speaker:
                return speaker.name
        return segment.speaker

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
            speakers=[Speaker.from_dict(s) for s in data.get("speakers") or []],
        )

"""Stitching chunk answers into one transcript, in order (used by the local engine's blocks and the Modal fan-out).

Each chunk's segments are clamped to the chunk's length (Whisper sometimes runs a timestamp past the audio it
was given), shifted to the chunk's place in the file and numbered in order; the chunks' timings are summed and
the transcript's language is the one most chunks heard.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from worker.transcripts.model import Segment

SEAM_EPSILON_S = 0.02  # a segment starting this close to a chunk's end belongs to nothing (hallucinated)


@dataclass
class StitchedChunk:
    """A chunk whose turn has come: its segments placed in the file, its timings as it reported them."""

    index: int
    end_s: float
    segments: list[Segment]
    timings: dict[str, Any]


@dataclass
class _Answer:
    start_s: float
    end_s: float
    segments: list[Segment]
    timings: dict[str, Any]
    language: str | None
    model: str


@dataclass
class ChunkStitcher:
    epsilon_s: float = SEAM_EPSILON_S
    segments: list[Segment] = field(default_factory=list)  # placed, in order
    chunk_timings: list[dict[str, Any]] = field(default_factory=list)  # in chunk order
    languages: Counter[str] = field(default_factory=Counter)
    models: list[str] = field(default_factory=list)
    end_s: float = 0.0  # the end of the last chunk stitched
    next_index: int = 0
    _waiting: dict[int, _Answer] = field(default_factory=dict)

    def place(self, segment: Segment, start_s: float, length_s: float) -> Segment | None:
        """One segment of the chunk starting at `start_s` (`length_s` long), clamped, shifted, numbered and
        appended; None when it lies past the chunk's end. For answers that stream in order."""
        kept = segment.clamped(length_s, self.epsilon_s)
        if kept is None:
            return None
        placed = kept.shifted(start_s, new_id=len(self.segments))
        self.segments.append(placed)
        return placed

    def chunk_done(self, end_s: float, timings: dict[str, Any], language: str | None = None, model: str = "") -> None:
        """The chunk whose segments were just placed has ended: count its timings, language and model."""
        self.chunk_timings.append(timings)
        if language:
            self.languages[language] += 1
        if model:
            self.models.append(model)
        self.end_s = max(self.end_s, end_s)
        self.next_index += 1

    def add(self, index: int, start_s: float, end_s: float, segments: Iterable[Segment], timings: dict[str, Any],
            language: str | None = None, model: str = "") -> list[StitchedChunk]:
        """A chunk's whole answer, in any order. Returns the chunks that are next in order now (possibly none),
        each with its segments placed."""
        self._waiting[index] = _Answer(start_s, end_s, list(segments), timings, language, model)
        ready: list[StitchedChunk] = []
        while self.next_index in self._waiting:
            number = self.next_index
            answer = self._waiting.pop(number)
            length = answer.end_s - answer.start_s
            placed = [s for s in (self.place(segment, answer.start_s, length) for segment in answer.segments) if s]
            self.chunk_done(answer.end_s, answer.timings, answer.language, answer.model)
            ready.append(StitchedChunk(number, answer.end_s, placed, answer.timings))
        return ready

    @property
    def waiting(self) -> int:
        """Answers held until the chunks before them arrive."""
        return len(self._waiting)

    def language(self, default: str | None = None) -> str | None:
        """The language most chunks heard (the first heard on a tie); `default` when none said."""
        return self.languages.most_common(1)[0][0] if self.languages else default

    def totals(self) -> dict[str, Any]:
        """The chunks' timings as one: the first chunk's device, any cold start, summed seconds, the RTF."""
        return combined_timings(self.chunk_timings)


def combined_timings(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    first = chunks[0] if chunks else {}
    inference_s = sum(float(t.get("inference_s") or 0.0) for t in chunks)
    audio_s = sum(float(t.get("audio_s") or 0.0) for t in chunks)
    return {
        "gpu": first.get("gpu", "cpu"),
        "cold_start": any(bool(t.get("cold_start")) for t in chunks),
        "model_load_s": round(sum(float(t.get("model_load_s") or 0.0) for t in chunks), 3),
        "inference_s": round(inference_s, 3),
        "audio_s": round(audio_s, 3),
        "rtf": round(inference_s / audio_s, 4) if audio_s > 0 else 0.0,
    }

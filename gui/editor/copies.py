"""Copies of segments and speakers, and the key a segment is compared by (edited or not, changed meanwhile or not)."""

from __future__ import annotations

import copy

from worker.transcripts.model import Segment, Speaker, Transcript, Word

SegmentKey = tuple[float, float, str, str | None]


def segment_key(segment: Segment) -> SegmentKey:
    """What makes two segments the same to the user: times to the millisecond, the shown text, the speaker."""
    return (round(segment.start, 3), round(segment.end, 3), segment.text.strip(), segment.speaker)


def copy_segment(segment: Segment) -> Segment:
    """A deep copy, much faster than copy.deepcopy (transcripts of hours hold tens of thousands of words)."""
    return Segment(segment.id, segment.start, segment.end, segment.text,
                   [Word(w.start, w.end, w.text, w.probability) for w in segment.words], segment.speaker)


def copy_segments(segments: list[Segment]) -> list[Segment]:
    return [copy_segment(s) for s in segments]


def copy_speaker(speaker: Speaker) -> Speaker:
    return Speaker(speaker.id, speaker.name, speaker.voice_id, speaker.confidence, speaker.embedding)


def transcript_metadata(transcript: Transcript) -> Transcript:
    """The transcript without its segments (language, model, timings…)."""
    return Transcript(segments=[], language=transcript.language, duration=transcript.duration, model=transcript.model,
                      backend=transcript.backend, timings=copy.deepcopy(transcript.timings), source=transcript.source)

"""The transcript as documents: plain text, tab-separated values, JSON in openai-whisper's shape, Word (DOCX).
Subtitles are worker.transcripts.subtitles'; worker.transcripts.formats chooses between them.

JSON is what openai-whisper's transcribe() returns and its WriteJSON writes: {"text", "segments", "language"},
each segment {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio",
"no_speech_prob", "words"}, each word {"word", "start", "end", "probability"} with its leading space (" so"), so
tools that read openai-whisper's JSON read ours. Our own fields follow theirs: the segment's "speaker" (name) and
"speaker_id" (with speakers), and the transcript's duration, model, backend, timings, source and speakers
(without voice embeddings). A transcript keeps no tokens or decoding statistics, so those fields hold what can
be derived: seek is the segment's start in 10 ms frames, tokens [], temperature 0.0, avg_logprob the mean log
probability of its words (0.0 without words), compression_ratio computed from its text as Whisper does, and
no_speech_prob 0.0. A segment whose words no longer spell its text (edited, and not aligned again) has no words.
Transcript.from_dict reads it back.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from pathlib import Path
from typing import Any

from worker.transcripts.editing import format_timestamp, with_own_spaces, words_match_text
from worker.transcripts.model import Segment, Transcript
from worker.transcripts.subtitles import spaced_language

FRAMES_PER_SECOND = 100  # Whisper's mel frames (seek is counted in them)


# --- text --------------------------------------------------------------------------------------------------

def txt(transcript: Transcript, timestamps: bool = False) -> str:
    """One line per segment (with speakers: one paragraph per turn, `Name: text`); `timestamps` starts each
    with its time range."""
    if transcript.speakers:
        return "\n".join(f"{_text_line(turn, timestamps, name)}\n" for name, turn in _turns(transcript))
    return "".join(_text_line(segment, timestamps) + "\n" for segment in transcript.segments if segment.text.strip())


def tsv(transcript: Transcript) -> str:
    """start, end (ms), the speaker's name (with speakers) and the text, one row per segment."""
    named = bool(transcript.speakers)
    rows = ["start\tend\tspeaker\ttext" if named else "start\tend\ttext"]
    for segment in transcript.segments:
        text = " ".join(segment.text.split())
        speaker = f"{' '.join((transcript.speaker_name(segment) or '').split())}\t" if named else ""
        rows.append(f"{round(segment.start * 1000)}\t{round(segment.end * 1000)}\t{speaker}{text}")
    return "\n".join(rows) + "\n"


def _turns(transcript: Transcript) -> list[tuple[str | None, Segment]]:
    """Consecutive segments of one speaker joined into one (a turn), with the speaker's name."""
    turns: list[tuple[str | None, Segment]] = []
    for segment in transcript.segments:
        if not segment.text.strip():
            continue
        name = transcript.speaker_name(segment)
        if turns and turns[-1][0] == name:
            last = turns[-1][1]
            turns[-1] = (name, Segment(last.id, last.start, segment.end, f"{last.text.strip()} {segment.text.strip()}"))
        else:
            turns.append((name, segment))
    return turns


def _time_range(segment: Segment) -> str:
    return f"[{format_timestamp(segment.start)} --> {format_timestamp(segment.end)}]"


def _text_line(segment: Segment, timestamps: bool, speaker: str | None = None) -> str:
    text = f"{speaker}: {segment.text.strip()}" if speaker else segment.text.strip()
    return f"{_time_range(segment)} {text}" if timestamps else text


# --- JSON --------------------------------------------------------------------------------------------------

def whisper_json(transcript: Transcript) -> str:
    """The transcript as JSON in openai-whisper's shape (see the module docstring), UTF-8, indented."""
    return json.dumps(whisper_dict(transcript), ensure_ascii=False, indent=2) + "\n"


def whisper_dict(transcript: Transcript) -> dict[str, Any]:
    spaced = spaced_language(transcript.language)
    segments = []
    for index, segment in enumerate(transcript.segments):
        words = _whisper_words(segment, spaced)
        item: dict[str, Any] = {
            "id": index,
            "seek": round(segment.start * FRAMES_PER_SECOND),
            "start": segment.start,
            "end": segment.end,
            "text": segment.text,
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": _avg_logprob(words),
            "compression_ratio": compression_ratio(segment.text),
            "no_speech_prob": 0.0,
            "words": words,
            "speaker": transcript.speaker_name(segment),
        }
        if transcript.speakers:
            item["speaker_id"] = segment.speaker
        segments.append(item)
    return {
        "text": transcript.text,
        "segments": segments,
        "language": transcript.language,
        "duration": transcript.duration,
        "model": transcript.model,
        "backend": transcript.backend,
        "timings": dict(transcript.timings),
        "source": transcript.source,
        "speakers": [{"id": s.id, "name": s.name, "voice_id": s.voice_id, "confidence": s.confidence}
                     for s in transcript.speakers],
    }


def _whisper_words(segment: Segment, spaced: bool) -> list[dict[str, Any]]:
    if not words_match_text(segment):
        return []
    words = with_own_spaces(segment.words) if spaced else segment.words
    return [{"word": w.text, "start": w.start, "end": w.end, "probability": w.probability} for w in words]


def _avg_logprob(words: list[dict[str, Any]]) -> float:
    if not words:
        return 0.0
    return round(sum(math.log(max(float(w["probability"]), 1e-6)) for w in words) / len(words), 4)


def compression_ratio(text: str) -> float:
    """How much zlib compresses the text, as Whisper computes it (repetitive hallucinations score high)."""
    data = text.encode("utf-8")
    return round(len(data) / len(zlib.compress(data)), 4)


# --- DOCX --------------------------------------------------------------------------------------------------

def docx_bytes(transcript: Transcript, timestamps: bool = False) -> bytes:
    """A Word document: the source file's name as title, then one paragraph per segment (with speakers: per
    turn, the name in bold); `timestamps` starts each with its time range in grey."""
    import docx
    from docx.shared import RGBColor

    document = docx.Document()
    title = Path(transcript.source).name if transcript.source else "Transcript"
    document.core_properties.title = title
    document.add_heading(title, level=1)
    paragraphs = _turns(transcript) if transcript.speakers else [(None, s) for s in transcript.segments if s.text.strip()]
    for name, segment in paragraphs:
        paragraph = document.add_paragraph()
        if timestamps:
            run = paragraph.add_run(f"{_time_range(segment)} ")
            run.font.color.rgb = RGBColor(0x80, 0x80, 0x80)
        if name:
            paragraph.add_run(f"{name}: ").bold = True
        paragraph.add_run(segment.text.strip())
    buffer = io.BytesIO()
    document.save(buffer)
    return _undated(buffer.getvalue())


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def _undated(package: bytes) -> bytes:
    """The same document as the same bytes: python-docx dates each zip entry with the time of writing; here each
    carries _ZIP_EPOCH instead (the document's own properties are unchanged)."""
    source = zipfile.ZipFile(io.BytesIO(package))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for entry in source.infolist():
            undated = zipfile.ZipInfo(entry.filename, date_time=_ZIP_EPOCH)
            undated.compress_type = entry.compress_type
            undated.external_attr = entry.external_attr
            target.writestr(undated, source.read(entry.filename))
    return buffer.getvalue()

"""Qt-free transcript editing: time parsing, split, merge, find and replace.

The editor (gui/editor.py) wraps these in undo commands; they never change their inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from worker.transcripts.model import Segment, Word

_TIME = re.compile(r"^\s*(?:(?:(\d+):)?(\d{1,2}):)?(\d+(?:[.,]\d*)?)\s*$")


def format_timestamp(seconds: float, separator: str = ".") -> str:
    """HH:MM:SS.mmm (rounded to the millisecond): the one timestamp format, in TXT/DOCX time ranges, VTT karaoke
    tags, the editor and search results."""
    total_ms = max(0, round(seconds * 1000))
    hours, rest = divmod(total_ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, ms = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def parse_timestamp(text: str) -> float:
    """Seconds from 'HH:MM:SS.mmm', 'MM:SS.mmm' or 'SS.mmm' (',' works as the decimal mark too).

    Raises ValueError with a one-line reason ("-1" is refused: times are never negative)."""
    match = _TIME.match(text)
    if match is None:
        raise ValueError(f"{text.strip() or 'an empty value'!r} is not a time (use HH:MM:SS.mmm)")
    hours, minutes, secs = match.groups()
    if hours is not None and minutes is not None and int(minutes) >= 60:
        raise ValueError(f"{text.strip()!r}: minutes must be below 60")
    value = int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(secs.replace(",", "."))
    if minutes is not None and float(secs.replace(",", ".")) >= 60:
        raise ValueError(f"{text.strip()!r}: seconds must be below 60")
    return round(value, 3)


def validate_times(start: float, end: float) -> str | None:
    """None when the times are acceptable, else the reason (one line) they are refused."""
    if start < 0 or end < 0:
        return "Times cannot be negative."
    if start > end:
        return f"The start ({format_timestamp(start)}) is after the end ({format_timestamp(end)})."
    return None


def _own_spaces(words: list[Word]) -> bool:
    """Whether the words carry their own leading spaces (" so", as Whisper makes them) or were stripped ("so")."""
    return any(w.text[:1].isspace() for w in words)


def words_text(words: list[Word]) -> str:
    """The text the words spell, in either convention (see _own_spaces)."""
    if _own_spaces(words):
        return "".join(w.text for w in words).strip()
    return " ".join(w.text.strip() for w in words if w.text.strip())


def with_own_spaces(words: list[Word]) -> list[Word]:
    """Copies in the leading-space convention (stripped words get one space each)."""
    if _own_spaces(words):
        return [replace(w) for w in words]
    return [replace(w, text=" " + w.text.strip()) for w in words]


def words_match_text(segment: Segment) -> bool:
    """True when the segment's word timestamps still spell its text (it was not edited since)."""
    return bool(segment.words) and words_text(segment.words).split() == segment.text.split()


def split_segment(segment: Segment, char_index: int) -> tuple[Segment, Segment]:
    """Split `segment` before character `char_index` of its text.

    With word timestamps that still match the text, the split time is where the word at the cut starts
    (a cut inside a word moves to the nearer word boundary); otherwise the time is split in proportion to the
    characters on each side. Raises ValueError when one side would be empty."""
    text = segment.text
    char_index = max(0, min(len(text), char_index))
    left_text, right_text = text[:char_index].rstrip(), text[char_index:].lstrip()
    if not left_text.strip() or not right_text.strip():
        raise ValueError("Put the cursor between two words to split a segment.")
    if words_match_text(segment):
        cut = _word_cut(segment, char_index)
        if 0 < cut < len(segment.words):
            left_words, right_words = segment.words[:cut], segment.words[cut:]
            at = min(max(right_words[0].start, segment.start), segment.end)
            left_text, right_text = words_text(left_words), words_text(right_words)
            return (
                Segment(segment.id, segment.start, round(at, 3), left_text, [replace(w) for w in left_words], segment.speaker),
                Segment(segment.id + 1, round(at, 3), segment.end, right_text, [replace(w) for w in right_words], segment.speaker),
            )
    share = len(left_text) / max(1, len(left_text) + len(right_text))
    at = round(segment.start + (segment.end - segment.start) * share, 3)
    return (
        Segment(segment.id, segment.start, at, left_text, [], segment.speaker),
        Segment(segment.id + 1, at, segment.end, right_text, [], segment.speaker),
    )


def _word_cut(segment: Segment, char_index: int) -> int:
    """Index of the first word that goes right of a cut at `char_index` of the segment's text."""
    text = segment.text
    # map each word to where its (stripped) text begins in the segment text
    position = 0
    for index, word in enumerate(segment.words):
        token = word.text.strip()
        if not token:
            continue
        found = text.find(token, position)
        if found < 0:
            return len(segment.words)
        if found + len(token) > char_index:
            # the cut is before or inside this word: a cut in the first half of the word goes before it
            if char_index <= found + len(token) // 2:
                return index
            return index + 1
        position = found + len(token)
    return len(segment.words)


def merge_segments(first: Segment, second: Segment) -> Segment:
    """One segment spanning both, texts joined with a space; word timestamps kept when both have them."""
    words: list[Word] = []
    if first.words and second.words:
        words = with_own_spaces(first.words) + with_own_spaces(second.words)
        if not words[len(first.words)].text.startswith(" "):
            words[len(first.words)] = replace(words[len(first.words)], text=" " + words[len(first.words)].text)
    text = " ".join(part for part in (first.text.strip(), second.text.strip()) if part)
    if first.text[:1].isspace():
        text = " " + text  # keep whisper's leading-space convention
    return Segment(first.id, min(first.start, second.start), max(first.end, second.end), text, words, first.speaker)


@dataclass(frozen=True)
class Match:
    row: int  # the segment's index
    start: int  # character range in the segment's text
    end: int


def _pattern(query: str, case_sensitive: bool, whole_word: bool) -> re.Pattern[str]:
    body = re.escape(query)
    if whole_word:
        body = rf"(?<!\w){body}(?!\w)"
    return re.compile(body, 0 if case_sensitive else re.IGNORECASE)


def find_matches(texts: list[str], query: str, case_sensitive: bool = False, whole_word: bool = False) -> list[Match]:
    """Every occurrence of `query` (literal text) in `texts`, in order."""
    if not query:
        return []
    pattern = _pattern(query, case_sensitive, whole_word)
    return [Match(row, m.start(), m.end()) for row, text in enumerate(texts) for m in pattern.finditer(text)]


def replace_in_text(text: str, query: str, replacement: str, case_sensitive: bool = False,
                    whole_word: bool = False) -> tuple[str, int]:
    """`text` with every match replaced (replacement taken literally), and the number replaced."""
    if not query:
        return text, 0
    return _pattern(query, case_sensitive, whole_word).subn(lambda _m: replacement, text)


def replace_all(texts: list[str], query: str, replacement: str, case_sensitive: bool = False,
                whole_word: bool = False) -> tuple[dict[int, str], int]:
    """New texts for the rows that change ({row: text}) and the total number of replacements."""
    changed: dict[int, str] = {}
    total = 0
    for row, text in enumerate(texts):
        new_text, count = replace_in_text(text, query, replacement, case_sensitive, whole_word)
        if count:
            changed[row] = new_text
            total += count
    return changed, total


# --- power tools: shift, regions, words under the playhead ---------------------------------------------------------

def shift_segments(segments: list[Segment], rows: list[int], offset: float) -> dict[int, Segment]:
    """New copies of the segments at `rows`, with their times and word times moved by `offset` seconds.

    Raises ValueError (one line) when a segment would start before 0."""
    offset = round(offset, 3)
    moved: dict[int, Segment] = {}
    for row in sorted(set(rows)):
        segment = segments[row]
        if segment.start + offset < -0.0005:
            raise ValueError(f"Shifting by {offset:+.3f} s would move segment {row + 1} before {format_timestamp(0)}.")
        moved[row] = segment.shifted(offset)
    return moved


def region_rows(segments: list[Segment], start: float, end: float) -> tuple[int, int]:
    """The rows [first, stop) of the segments that overlap the time range [start, end); (n, n) when none
    does, n being where a segment starting at `start` would go."""
    overlapping = [row for row, s in enumerate(segments) if s.start < end and s.end > start]
    if not overlapping:
        at = next((row for row, s in enumerate(segments) if s.start >= start), len(segments))
        return at, at
    return overlapping[0], overlapping[-1] + 1


def region_for(segments: list[Segment], rows: list[int] | None = None,
               time_range: tuple[float, float] | None = None) -> tuple[int, int, float, float]:
    """What a re-transcription replaces: (first row, stop row, start s, end s). `rows`: the selected segments
    (their whole span, with any unselected rows between); `time_range`: widened to whole segments, so no
    segment is cut in two. Raises ValueError for an empty selection or range."""
    if rows:
        first, stop = min(rows), max(rows) + 1
        return first, stop, segments[first].start, max(s.end for s in segments[first:stop])
    if time_range is None or time_range[1] <= time_range[0]:
        raise ValueError("Choose segments, or a time range whose end is after its start.")
    start, end = time_range
    first, stop = region_rows(segments, start, end)
    if stop > first:
        start = min(start, segments[first].start)
        end = max(end, max(s.end for s in segments[first:stop]))
    return first, stop, round(start, 3), round(end, 3)


def word_spans(segment: Segment) -> list[tuple[int, int]]:
    """Where each word lies in the segment's stripped text: (start, end) character offsets, one per word
    (empty for a word with no text). [] when the words no longer spell the text."""
    if not words_match_text(segment):
        return []
    text = segment.text.strip()
    spans, position = [], 0
    for word in segment.words:
        token = word.text.strip()
        found = text.find(token, position) if token else -1
        if found < 0:
            spans.append((position, position))
            continue
        spans.append((found, found + len(token)))
        position = found + len(token)
    return spans


def word_at(segment: Segment, seconds: float) -> int:
    """The index of the word being spoken at `seconds` (the last one started), -1 before the first or
    outside the segment, or when it has no word timestamps."""
    if not segment.words or not segment.start <= seconds < max(segment.end, segment.words[-1].end):
        return -1
    current = -1
    for index, word in enumerate(segment.words):
        if word.start > seconds:
            break
        current = index
    return current


def low_confidence(segment: Segment, threshold: float) -> list[int]:
    """Indices of the words whose probability is below `threshold`."""
    return [i for i, w in enumerate(segment.words) if w.text.strip() and w.probability < threshold]

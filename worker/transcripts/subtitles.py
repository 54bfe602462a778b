"""The one subtitle cue engine: cues re-cut from word timestamps to follow the rules, or one cue per segment.

    rules = SubtitleRules(max_line_chars=32, max_lines=2)
    result = cut_cues(transcript, rules)      # result.cues, result.report_line()
    segment_cues(transcript)                  # one cue per segment, at its own times (no rules)
    render_subtitles(transcript, "srt", rules) # SRT, VTT or ASS text (karaoke tags with rules.karaoke)
    fit_segments(transcript, rules)           # the cues as segments (the editor's "Fit to subtitle rules")

How cues are made: the words of all segments form one stream (a speaker change is a hard break). A dynamic
programme chooses where cues end: after sentence punctuation and at pauses is cheap, mid-clause is dear,
and a cue that could not be read at `max_cps` costs in proportion to the excess. Every cue fits in
`max_lines` lines of `max_line_chars` characters (a word is never split: only a word longer than a whole
line breaks that limit, alone on its line). Lines are balanced. Cue times are whole milliseconds: a cue
starts with its first word and stays up long enough to be read (`max_cps`, `min_duration_ms`) where the
next cue leaves room; cues never overlap and keep `min_gap_ms` apart. What could not hold is counted and
reported in one line ("3 cues exceed 17 characters per second").

Segments whose word timestamps no longer spell their text (edited, or made without words) are timed in
proportion to their characters; the report says how many.

Characters per second count every character a viewer reads, a line break counting as one space.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Sequence

from worker.transcripts.editing import format_timestamp, words_match_text
from worker.transcripts.model import Segment, Transcript, Word

DEFAULT_MAX_LINE_CHARS = 42
DEFAULT_MAX_LINES = 2
DEFAULT_MAX_CPS = 17.0
DEFAULT_MIN_DURATION_MS = 1000
DEFAULT_MIN_GAP_MS = 80
KARAOKE_FORMATS = ("vtt", "ass")
RULE_FORMATS = ("srt", "vtt", "ass")

# languages written without spaces: a line may break between any two words
_NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "km", "my", "yue", "bo"}
_SENTENCE_END = tuple(".?!…。？！")
_CLAUSE_END = tuple(",;:—–、，；：")
_CLOSERS = "\"')]}»”’"
_MAX_LINGER_MS = 1500  # how long a cue may stay up after its last word to be read
_MAX_LEAD_MS = 500  # how early a cue may appear before its first word, when it needs the time to be read
_PAUSE_MS = 1000  # a silence this long inside a cue is as bad as breaking mid-clause


@dataclass(frozen=True)
class SubtitleRules:
    """Limits for subtitle cues (SRT, VTT, ASS). TXT, JSON and TSV ignore them."""

    max_line_chars: int = DEFAULT_MAX_LINE_CHARS
    max_lines: int = DEFAULT_MAX_LINES
    max_cps: float = DEFAULT_MAX_CPS
    min_duration_ms: int = DEFAULT_MIN_DURATION_MS
    min_gap_ms: int = DEFAULT_MIN_GAP_MS
    karaoke: bool = False  # VTT: <00:00:01.000> before each word; ASS: {\k} per word

    def __post_init__(self) -> None:
        if self.max_line_chars < 1:
            raise ValueError(f"max line characters must be at least 1, not {self.max_line_chars}")
        if self.max_lines < 1:
            raise ValueError(f"max lines must be at least 1, not {self.max_lines}")
        if self.max_cps <= 0:
            raise ValueError(f"max characters per second must be above 0, not {self.max_cps:g}")
        if self.min_duration_ms < 0 or self.min_gap_ms < 0:
            raise ValueError("minimum duration and gap cannot be negative")


@dataclass
class TimedWord:
    """One unbreakable unit of text with its time in milliseconds."""

    text: str
    start: int
    end: int
    space_before: bool  # joined to the previous word with a space
    hard_break_before: bool = False  # another speaker starts here
    segment_start: bool = False
    speaker: str | None = None
    sources: list[Word] = field(default_factory=list)  # the transcript's words (empty: timed by characters)


@dataclass
class Cue:
    start: int  # ms
    end: int  # ms
    line_words: list[list[TimedWord]]

    @property
    def words(self) -> list[TimedWord]:
        return [word for line in self.line_words for word in line]

    @property
    def lines(self) -> list[str]:
        return [_line_text(line) for line in self.line_words]

    @property
    def text(self) -> str:
        return " ".join(self.lines)

    @property
    def chars(self) -> int:
        return len(self.text)

    @property
    def cps(self) -> float:
        return self.chars * 1000 / max(1, self.end - self.start)


@dataclass
class CutResult:
    cues: list[Cue]
    rules: SubtitleRules | None  # None: one cue per segment (segment_cues), no rules to follow or report
    estimated_segments: int = 0  # segments timed by characters (no matching word timestamps)

    def too_fast(self) -> int:
        rules = self.rules
        return 0 if rules is None else sum(1 for cue in self.cues if cue.cps > rules.max_cps + 1e-6)

    def too_short(self) -> int:
        rules = self.rules
        return 0 if rules is None else sum(1 for cue in self.cues if cue.end - cue.start < rules.min_duration_ms)

    def long_words(self) -> int:
        rules = self.rules
        return 0 if rules is None else sum(1 for cue in self.cues for line in cue.lines if len(line) > rules.max_line_chars)

    def tight_gaps(self) -> int:
        rules = self.rules
        return 0 if rules is None else sum(1 for a, b in zip(self.cues, self.cues[1:]) if b.start - a.end < rules.min_gap_ms)

    def report_line(self) -> str:
        """What could not follow the rules, in one line ("" when everything holds, or without rules)."""
        rules, parts = self.rules, []
        if rules is None:
            return ""
        if count := self.long_words():
            parts.append(f"{_count(count, 'line')} over {rules.max_line_chars} characters (a word longer than a line)")
        if count := self.too_fast():
            parts.append(f"{_count(count, 'cue')} exceed{'s' if count == 1 else ''} {rules.max_cps:g} characters per second")
        if count := self.too_short():
            parts.append(f"{_count(count, 'cue')} shorter than {rules.min_duration_ms} ms")
        if count := self.tight_gaps():
            parts.append(f"{_count(count, 'gap')} under {rules.min_gap_ms} ms")
        if self.estimated_segments:
            parts.append(f"{_count(self.estimated_segments, 'segment')} without word timestamps timed by characters")
        return "; ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --- words ---------------------------------------------------------------------------------------------------

def spaced_language(language: str | None) -> bool:
    """Whether the language puts spaces between words (None: assume it does)."""
    return (language or "").split("-")[0].lower() not in _NO_SPACE_LANGUAGES


def timed_words(transcript: Transcript) -> tuple[list[TimedWord], int]:
    """The transcript as one stream of words, and how many segments had to be timed by characters."""
    spaced = spaced_language(transcript.language)
    words: list[TimedWord] = []
    estimated = 0
    previous_speaker: str | None = None
    for segment in transcript.segments:
        if not segment.text.strip():
            continue
        if words_match_text(segment):
            units = _from_word_timestamps(segment, spaced)
        else:
            units = _by_characters(segment)
            estimated += 1
        if not units:
            continue
        units[0].segment_start = True
        units[0].space_before = True
        units[0].hard_break_before = bool(words) and segment.speaker != previous_speaker
        previous_speaker = segment.speaker
        for unit in units:
            unit.speaker = segment.speaker
            if words:  # times never run backwards
                unit.start = max(unit.start, words[-1].start)
            unit.end = max(unit.end, unit.start)
            words.append(unit)
    return words, estimated


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _from_word_timestamps(segment: Segment, spaced: bool) -> list[TimedWord]:
    start, end = _ms(segment.start), max(_ms(segment.start), _ms(segment.end))
    # Whisper's words carry their leading space (" so"; none: a piece of the word before); stripped words
    # ("so") are whole words
    own_spaces = any(w.text[:1].isspace() for w in segment.words)
    units: list[TimedWord] = []
    for word in segment.words:
        text = word.text.strip()
        if not text:
            continue
        w_start = min(max(_ms(word.start), start), end)
        w_end = min(max(_ms(word.end), w_start), end)
        joined = not word.text[:1].isspace() if own_spaces else not spaced
        if units and joined and spaced:  # a piece of the previous word: never split from it
            last = units[-1]
            last.text += text
            last.end = max(last.end, w_end)
            last.sources.append(word)
            continue
        units.append(TimedWord(text, w_start, w_end, not joined, sources=[word]))
    return units


def _by_characters(segment: Segment) -> list[TimedWord]:
    """Word times spread over the segment in proportion to the characters."""
    text = " ".join(segment.text.split())
    start, end = _ms(segment.start), max(_ms(segment.start), _ms(segment.end))
    span = max(1, len(text))
    units, position = [], 0
    for token in text.split(" "):
        units.append(TimedWord(token, start + (end - start) * position // span,
                               start + (end - start) * (position + len(token)) // span, True))
        position += len(token) + 1
    return units


# --- lines ------------------------------------------------------------------------------------------------------

class _Lengths:
    """Joined length of any run of words in O(1), from prefix sums."""

    def __init__(self, words: Sequence[TimedWord]) -> None:
        self.chars, self.spaces = [0], [0]
        for word in words:
            self.chars.append(self.chars[-1] + len(word.text))
            self.spaces.append(self.spaces[-1] + (1 if word.space_before else 0))

    def __call__(self, i: int, j: int) -> int:
        """Length of words[i:j] joined (i < j)."""
        return self.chars[j] - self.chars[i] + self.spaces[j] - self.spaces[i + 1]


def _line_text(words: Sequence[TimedWord]) -> str:
    return "".join((" " if i and w.space_before else "") + w.text for i, w in enumerate(words))


def _break_bonus(word: TimedWord) -> float:
    """How good a line break after `word` is (0..2)."""
    text = word.text.rstrip(_CLOSERS)
    if text.endswith(_SENTENCE_END):
        return 2.0
    if text.endswith(_CLAUSE_END):
        return 1.0
    return 0.0


def balanced_lines(words: Sequence[TimedWord], max_chars: int) -> list[list[TimedWord]]:
    """The words in the fewest lines of at most `max_chars` (a longer word alone on its line), with line
    lengths as even as possible and breaks after punctuation preferred."""
    count = len(_greedy_lines(words, max_chars))
    if count <= 1:
        return [list(words)]
    n = len(words)
    inf = float("inf")
    joined = _Lengths(words)
    # best[k][j]: cost of putting words[:j] into k lines
    best = [[inf] * (n + 1) for _ in range(count + 1)]
    back = [[0] * (n + 1) for _ in range(count + 1)]
    best[0][0] = 0.0
    for k in range(1, count + 1):
        for j in range(1, n + 1):
            for i in range(j - 1, -1, -1):
                length = joined(i, j)
                if length > max_chars and j - i > 1:
                    break
                if best[k - 1][i] == inf:
                    continue
                cost = best[k - 1][i] + length * length - (_break_bonus(words[j - 1]) * max_chars * 2 if j < n else 0)
                if cost < best[k][j]:
                    best[k][j], back[k][j] = cost, i
    if best[count][n] == inf:
        return _greedy_lines(words, max_chars)
    lines, j = [], n
    for k in range(count, 0, -1):
        i = back[k][j]
        lines.append(list(words[i:j]))
        j = i
    return lines[::-1]


def _greedy_lines(words: Sequence[TimedWord], max_chars: int) -> list[list[TimedWord]]:
    lines: list[list[TimedWord]] = []
    current: list[TimedWord] = []
    length = 0
    for word in words:
        added = len(word.text) + (1 if current and word.space_before else 0)
        if current and length + added > max_chars:
            lines.append(current)
            current, length = [], 0
            added = len(word.text)
        current.append(word)
        length += added
    if current:
        lines.append(current)
    return lines


# --- cues ---------------------------------------------------------------------------------------------------------

def cut_cues(transcript: Transcript, rules: SubtitleRules = SubtitleRules()) -> CutResult:
    """The transcript re-cut into cues that follow `rules` as far as they can (see the module docstring)."""
    words, estimated = timed_words(transcript)
    ends = _choose_cue_ends(words, rules)
    cues: list[Cue] = []
    first = 0
    for last in ends:
        group = words[first:last]
        cues.append(Cue(group[0].start, group[-1].end, balanced_lines(group, rules.max_line_chars)))
        first = last
    _time_cues(cues, rules, _ms(transcript.duration))
    return CutResult(cues, rules, estimated)


def _choose_cue_ends(words: list[TimedWord], rules: SubtitleRules) -> list[int]:
    """Indices (exclusive) where cues end, by dynamic programming over the cost of each possible cue."""
    n = len(words)
    if not n:
        return []
    inf = float("inf")
    joined = _Lengths(words)
    best = [inf] * (n + 1)
    back = [0] * (n + 1)
    best[0] = 0.0
    for i in range(n):
        if best[i] == inf:
            continue
        lines, line_length = 1, 0
        pause_cost = 0.0
        for j in range(i, n):
            word = words[j]
            if j > i:
                if word.hard_break_before:
                    break
                pause_cost += max(0, word.start - words[j - 1].end - _PAUSE_MS) / 100
            # greedy line filling tells the fewest lines these words need
            added = len(word.text) + (1 if line_length and word.space_before else 0)
            if line_length and line_length + added > rules.max_line_chars:
                lines, line_length, added = lines + 1, 0, len(word.text)
            line_length += added
            if lines > rules.max_lines and j > i:
                break
            cost = best[i] + _cue_cost(words, i, j + 1, joined(i, j + 1), rules) + pause_cost
            if cost < best[j + 1]:
                best[j + 1], back[j + 1] = cost, i
    ends, j = [], n
    while j > 0:
        ends.append(j)
        j = back[j]
    return ends[::-1]


def _cue_cost(words: list[TimedWord], i: int, j: int, chars: int, rules: SubtitleRules) -> float:
    """The cost of one cue made of words[i:j], `chars` long when joined (lower is better)."""
    last = words[j - 1]
    cost = 10.0  # every cue: fewer, fuller cues are better
    if j < len(words):
        following = words[j]
        bonus = _break_bonus(last)
        pause = following.start - last.end
        if following.hard_break_before:
            pass
        elif bonus >= 2:
            cost += 0.0
        elif bonus >= 1:
            cost += 6.0
        else:
            cost += 20.0
        cost -= min(12.0, max(0, pause) / 60)  # a pause is a natural break (-12 at 0.72 s)
        if following.segment_start:
            cost -= 4.0
        room = following.start - rules.min_gap_ms - words[i].start
    else:
        room = last.end + _MAX_LINGER_MS - words[i].start
    room = max(1, room)
    cps = chars * 1000 / room
    if cps > rules.max_cps:
        cost += 40.0 * (cps - rules.max_cps) / rules.max_cps + 20.0
    if room < rules.min_duration_ms:
        cost += 15.0
    if j - i == 1:
        cost += 8.0  # a lone word
    return cost


def _time_cues(cues: list[Cue], rules: SubtitleRules, duration_ms: int) -> None:
    """Final times: each cue as long as reading needs, within its room (it may appear up to _MAX_LEAD_MS
    before its first word and stay up to _MAX_LINGER_MS after its last); no overlaps; gaps kept."""
    previous_end: int | None = None
    for index, cue in enumerate(cues):
        words = cue.words
        spoken_start, spoken_end = words[0].start, words[-1].end
        needed = max(rules.min_duration_ms, _ceil_div(cue.chars * 1000, rules.max_cps))
        if index + 1 < len(cues):
            limit = cues[index + 1].words[0].start - rules.min_gap_ms
        else:
            limit = max(spoken_end + _MAX_LINGER_MS, duration_ms)
        lower = 0 if previous_end is None else previous_end + rules.min_gap_ms
        start = max(lower, min(spoken_start, max(spoken_start - _MAX_LEAD_MS, limit - needed)))
        wanted = max(spoken_end, start + rules.min_duration_ms, min(start + needed, spoken_end + _MAX_LINGER_MS))
        end = min(wanted, limit)
        cue.start, cue.end = start, max(end, start + 1)
        previous_end = cue.end


def _ceil_div(chars_ms: int, cps: float) -> int:
    return int(-(-chars_ms // cps))


def segment_cues(transcript: Transcript) -> CutResult:
    """One cue per segment with text, at the segment's own times (whole milliseconds); its lines break only
    where the text has line breaks. No rules: nothing is re-cut, re-timed or reported."""
    cues: list[Cue] = []
    for segment in transcript.segments:
        lines = [line.split() for line in segment.text.strip().splitlines() if line.strip()]
        if not lines:
            continue
        start = _ms(segment.start)
        end = max(start, _ms(segment.end))
        cues.append(Cue(start, end, [[TimedWord(token, start, end, position > 0, speaker=segment.speaker)
                                      for position, token in enumerate(line)] for line in lines]))
    return CutResult(cues, None)


def make_cues(transcript: Transcript, rules: SubtitleRules | None) -> CutResult:
    """The cues of `transcript`: re-cut to follow `rules` (cut_cues), or one per segment without (segment_cues)."""
    return segment_cues(transcript) if rules is None else cut_cues(transcript, rules)


# --- the editor's re-cut ------------------------------------------------------------------------------------------

def fit_segments(transcript: Transcript, rules: SubtitleRules = SubtitleRules()) -> tuple[list[Segment], CutResult]:
    """The transcript's segments re-cut as cues (one segment per cue, text on one line). Word timestamps stay
    with their words; a cue that holds words timed by characters gets none."""
    result = cut_cues(transcript, rules)
    segments = []
    for index, cue in enumerate(result.cues):
        words: list[Word] = []
        if all(w.sources for w in cue.words):
            for unit in cue.words:
                for position, source in enumerate(unit.sources):
                    text = source.text
                    if position == 0 and not text[:1].isspace():
                        text = " " + text.lstrip()
                    words.append(Word(source.start, source.end, text, source.probability))
        segments.append(Segment(index, cue.start / 1000, cue.end / 1000, " " + cue.text, words, cue.words[0].speaker))
    return segments, result


# --- rendering --------------------------------------------------------------------------------------------------

def render_subtitles(transcript: Transcript, fmt: str, rules: SubtitleRules | None = SubtitleRules()) -> str:
    """SRT, VTT or ASS text of the cues (make_cues: None for one cue per segment). With `rules.karaoke`, VTT and
    ASS carry each word's time. A cue of a segment with a speaker names them (Transcript.speaker_name)."""
    return render_cues(make_cues(transcript, rules), fmt, {s.id: s.name for s in transcript.speakers})


def render_cues(result: CutResult, fmt: str, speaker_names: dict[str, str] | None = None) -> str:
    """With `speaker_names` (speaker id -> name; an id missing from it is its own name), each cue of a speaker
    names them: SRT `Name: text`, VTT `<v Name>text`, ASS the event's Name field. None: no names."""
    import pysubs2

    fmt = fmt.lower().lstrip(".")
    if fmt not in RULE_FORMATS:
        raise ValueError(f"{fmt!r} is not a subtitle format ({', '.join(RULE_FORMATS)})")
    karaoke = result.rules is not None and result.rules.karaoke and fmt in KARAOKE_FORMATS
    subs = pysubs2.SSAFile()
    if fmt == "ass":
        subs.info["Title"] = "Whisper Desk"
    for cue in result.cues:
        if karaoke and fmt == "ass":
            text = _ass_karaoke(cue)
        elif karaoke:
            text = _vtt_karaoke(cue)
        else:
            text = r"\N".join(_escaped(line, fmt) for line in cue.lines)
        speaker = cue.words[0].speaker if cue.words else None
        name = speaker_names.get(speaker, speaker) if speaker_names is not None and speaker is not None else None
        if name and fmt == "srt":
            text = f"{_escaped(name, fmt)}: {text}"
        elif name and fmt == "vtt":
            text = f"<v {_escaped(name, fmt).replace('>', '&gt;')}>{text}"
        actor = name.replace(",", " ") if name and fmt == "ass" else ""  # a comma would end ASS's Name field
        subs.append(pysubs2.SSAEvent(start=cue.start, end=cue.end, text=text, name=actor))
    # keep_ssa_tags: SRT/VTT text goes out verbatim (VTT timestamp tags included)
    return subs.to_string(fmt, keep_ssa_tags=fmt != "ass")


def _escaped(text: str, fmt: str) -> str:
    text = text.replace("-->", "->")
    if fmt == "vtt":
        return html.escape(text, quote=False)
    if fmt == "ass":  # braces open override blocks in ASS; a backslash starts a tag
        return text.replace("\\", "\u29f5").replace("{", "(").replace("}", ")")
    return text


def _vtt_karaoke(cue: Cue) -> str:
    """Each word after the first preceded by its start time (<00:00:01.500>), strictly inside the cue."""
    out_lines = []
    first = True
    for line in cue.line_words:
        parts = []
        for position, word in enumerate(line):
            text = _escaped(word.text, "vtt")
            sep = " " if position and word.space_before else ""
            if not first and cue.start < word.start < cue.end:
                parts.append(f"{sep}<{format_timestamp(word.start / 1000)}>{text}")
            else:
                parts.append(sep + text)
            first = False
        out_lines.append("".join(parts))
    return r"\N".join(out_lines)


def _ass_karaoke(cue: Cue) -> str:
    r"""{\kN} before each word: N centiseconds until the next word starts (the first absorbs any lead-in)."""
    flat = cue.words
    starts = [max(cue.start, min(w.start, cue.end)) for w in flat] + [cue.end]
    starts[0] = cue.start
    durations = [max(0, round((b - a) / 10)) for a, b in zip(starts, starts[1:])]
    out_lines, index = [], 0
    for line in cue.line_words:
        parts = []
        for position, word in enumerate(line):
            sep = " " if position and word.space_before else ""
            parts.append(f"{sep}{{\\k{durations[index]}}}{_escaped(word.text, 'ass')}")
            index += 1
        out_lines.append("".join(parts))
    return r"\N".join(out_lines)

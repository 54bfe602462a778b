"""Exports (TXT, SRT, VTT, JSON, TSV, DOCX) and subtitle import.

Subtitles are built as pysubs2 events and written by pysubs2; long segments are re-wrapped into cues
that respect a maximum line length and a number of lines per cue, timed from word timestamps when the
text still matches them, else in proportion to the characters. Files are written atomically: a
temporary file in the target folder, fsync, then a rename, so a crash never leaves a half-written export.
"""

from __future__ import annotations

import html
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from worker.core.errors import MediaError, WhisperDeskError
from worker.transcripts.editing import format_timestamp, words_match_text
from worker.transcripts.model import Segment, Transcript
from worker.transcripts.subtitles import RULE_FORMATS, SubtitleRules, render_subtitles

EXPORT_FORMATS: tuple[str, ...] = ("txt", "srt", "vtt", "json", "tsv", "docx", "ass")
FORMAT_LABELS = {
    "txt": "Plain text (.txt)",
    "srt": "SubRip subtitles (.srt)",
    "vtt": "WebVTT subtitles (.vtt)",
    "json": "JSON with segments and words (.json)",
    "tsv": "Tab-separated start/end/text in ms (.tsv)",
    "docx": "Word document (.docx)",
    "ass": "ASS subtitles, karaoke-ready (.ass)",
}
SUBTITLE_FORMATS = ("srt", "vtt")
BINARY_FORMATS = ("docx",)
IMPORT_SUFFIXES = (".srt", ".vtt")
_SRT_TAGS = re.compile(r"</?(?:i|b|u|s|font)(?:\s[^>]*)?>", re.IGNORECASE)


class ExportError(WhisperDeskError):
    """An export could not be written. One line naming the file."""


class ExportExistsError(ExportError, FileExistsError):
    """The target exists and overwriting was not allowed."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        WhisperDeskError.__init__(self, f"{self.path.name} already exists in {self.path.parent} (not overwritten)")

    def __str__(self) -> str:
        return str(self.args[0])


def _check_format(fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    return fmt


# --- subtitle cues ---------------------------------------------------------------------------------------

@dataclass
class Cue:
    start: float
    end: float
    lines: list[str]
    speaker: str | None = None  # the speaker's name (None: no speakers)


@dataclass
class _Token:
    text: str  # no whitespace inside (except CJK-style words that carried none)
    start: float
    end: float
    sep: str  # what joins it to the previous token: "", " " or "\n"


def _segment_tokens(segment: Segment) -> list[_Token]:
    start, end = segment.start, max(segment.start, segment.end)
    if words_match_text(segment) and "\n" not in segment.text.strip():
        tokens: list[_Token] = []
        previous_end = start
        for word in segment.words:
            if not word.text.strip():
                continue
            w_start = min(max(word.start, previous_end), end)
            w_end = min(max(word.end, w_start), end)
            tokens.append(_Token(word.text.strip(), w_start, w_end, " " if word.text[:1].isspace() else ""))
            previous_end = w_start
        return tokens
    text = segment.text.strip()
    span = max(1, len(text))
    tokens = []
    previous = 0
    for match in re.finditer(r"\S+", text):
        gap = text[previous:match.start()]
        tokens.append(_Token(
            match.group(),
            start + (end - start) * match.start() / span,
            start + (end - start) * match.end() / span,
            "\n" if "\n" in gap else " ",
        ))
        previous = match.end()
    return tokens


def _hard_split(token: _Token, limit: int) -> list[_Token]:
    """A token longer than a whole line, cut into line-sized pieces timed in proportion."""
    pieces = [token.text[i:i + limit] for i in range(0, len(token.text), limit)]
    duration = token.end - token.start
    out, offset = [], 0
    for index, piece in enumerate(pieces):
        out.append(_Token(
            piece,
            token.start + duration * offset / len(token.text),
            token.start + duration * (offset + len(piece)) / len(token.text),
            token.sep if index == 0 else "",
        ))
        offset += len(piece)
    return out


def _wrap(tokens: list[_Token], max_line_length: int | None) -> list[list[_Token]]:
    """Tokens into lines. Without a limit, lines break only where the text has line breaks."""
    lines: list[list[_Token]] = []
    current: list[_Token] = []
    length = 0
    for token in tokens:
        if max_line_length is None:
            if current and token.sep == "\n":
                lines.append(current)
                current = []
            current.append(token)
            continue
        for piece in _hard_split(token, max_line_length) if len(token.text) > max_line_length else [token]:
            sep = "" if piece.sep == "" else " "
            if current and length + len(sep) + len(piece.text) > max_line_length:
                lines.append(current)
                current, length = [], 0
            length += (len(sep) if current else 0) + len(piece.text)
            current.append(piece)
    if current:
        lines.append(current)
    return lines


def _line_text(line: list[_Token]) -> str:
    return "".join(("" if i == 0 or t.sep == "" else " ") + t.text for i, t in enumerate(line))


def subtitle_cues(transcript: Transcript, max_line_length: int | None = None, max_lines: int = 2) -> list[Cue]:
    """The transcript's segments as subtitle cues: no line longer than `max_line_length` characters
    (None: no limit) and at most `max_lines` lines per cue; a segment that does not fit is split into
    consecutive cues covering its time span."""
    if max_line_length is not None and max_line_length < 1:
        raise ValueError("max_line_length must be at least 1")
    if max_lines < 1:
        raise ValueError("max_lines must be at least 1")
    cues: list[Cue] = []
    for segment in transcript.segments:
        tokens = _segment_tokens(segment)
        if not tokens:
            continue
        lines = _wrap(tokens, max_line_length)
        groups = [lines[i:i + max_lines] for i in range(0, len(lines), max_lines)]
        seg_start, seg_end = segment.start, max(segment.start, segment.end)
        starts = [seg_start] + [group[0][0].start for group in groups[1:]]
        for index, group in enumerate(groups):
            cue_start = starts[index]
            cue_end = starts[index + 1] if index + 1 < len(groups) else seg_end
            cues.append(Cue(round(cue_start, 3), round(max(cue_start, cue_end), 3), [_line_text(line) for line in group],
                            transcript.speaker_name(segment)))
    return cues


def _subtitle_file(transcript: Transcript, fmt: str, max_line_length: int | None, max_lines: int):
    import pysubs2

    subs = pysubs2.SSAFile()
    for cue in subtitle_cues(transcript, max_line_length, max_lines):
        lines = [line.replace("-->", "->") for line in cue.lines]
        if fmt == "vtt":
            lines = [html.escape(line, quote=False) for line in lines]
        if cue.speaker and lines:  # SRT `Name: text`, VTT's voice tag `<v Name>text`
            name = cue.speaker.replace("-->", "->")
            lines[0] = f"<v {html.escape(name)}>{lines[0]}" if fmt == "vtt" else f"{name}: {lines[0]}"
        subs.append(pysubs2.SSAEvent(start=round(cue.start * 1000), end=round(cue.end * 1000), text=r"\N".join(lines)))
    return subs


# --- rendering -------------------------------------------------------------------------------------------

def render(transcript: Transcript, fmt: str, max_line_length: int | None = None, max_lines: int = 2,
           timestamps: bool = False, rules: SubtitleRules | None = None) -> str | bytes:
    """The transcript in `fmt` (one of EXPORT_FORMATS): str for text formats, bytes for DOCX.

    Subtitles (SRT, VTT, ASS) with `rules` are re-cut from word timestamps (worker.transcripts.subtitles); without,
    SRT/VTT keep one cue per segment, shaped by `max_line_length`/`max_lines`. `timestamps` prefixes each
    TXT/DOCX line with its time range."""
    fmt = _check_format(fmt)
    if fmt in RULE_FORMATS and (rules is not None or fmt == "ass"):
        return render_subtitles(transcript, fmt, rules or SubtitleRules())
    if fmt in SUBTITLE_FORMATS:
        # keep_ssa_tags: the text goes out verbatim (braces are not taken for override tags)
        return _subtitle_file(transcript, fmt, max_line_length, max_lines).to_string(fmt, keep_ssa_tags=True)
    if fmt == "json":
        return json.dumps(_json_dict(transcript), ensure_ascii=False, indent=2) + "\n"
    if fmt == "tsv":
        named = bool(transcript.speakers)
        rows = ["start\tend\tspeaker\ttext" if named else "start\tend\ttext"]
        for segment in transcript.segments:
            text = " ".join(segment.text.split())
            speaker = f"{' '.join((transcript.speaker_name(segment) or '').split())}\t" if named else ""
            rows.append(f"{round(segment.start * 1000)}\t{round(segment.end * 1000)}\t{speaker}{text}")
        return "\n".join(rows) + "\n"
    if fmt == "txt":
        if transcript.speakers:
            return "\n".join(f"{_text_line(turn, timestamps, name)}\n" for name, turn in _turns(transcript))
        return "".join(_text_line(segment, timestamps) + "\n" for segment in transcript.segments if segment.text.strip())
    return _docx_bytes(transcript, timestamps)


def _json_dict(transcript: Transcript) -> dict:
    """The transcript as JSON; with speakers, each segment's "speaker" is the name (its id in
    "speaker_id") and the speakers are listed without their voice embeddings."""
    data = transcript.to_dict()
    if transcript.speakers:
        for segment, item in zip(transcript.segments, data["segments"]):
            item["speaker_id"] = segment.speaker
            item["speaker"] = transcript.speaker_name(segment)
        for speaker in data["speakers"]:
            speaker.pop("embedding", None)
    return data


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


def _text_line(segment: Segment, timestamps: bool, speaker: str | None = None) -> str:
    text = f"{speaker}: {segment.text.strip()}" if speaker else segment.text.strip()
    if not timestamps:
        return text
    return f"[{format_timestamp(segment.start)} --> {format_timestamp(segment.end)}] {text}"


def _docx_bytes(transcript: Transcript, timestamps: bool) -> bytes:
    import docx
    from docx.shared import RGBColor

    document = docx.Document()
    title = Path(transcript.source).name if transcript.source else "Transcript"
    document.core_properties.title = title
    document.add_heading(title, level=1)
    # with speakers, one paragraph per turn: the speaker's name in bold, then what they said
    paragraphs = _turns(transcript) if transcript.speakers else [(None, s) for s in transcript.segments if s.text.strip()]
    for name, segment in paragraphs:
        paragraph = document.add_paragraph()
        if timestamps:
            run = paragraph.add_run(f"[{format_timestamp(segment.start)} --> {format_timestamp(segment.end)}] ")
            run.font.color.rgb = RGBColor(0x80, 0x80, 0x80)
        if name:
            paragraph.add_run(f"{name}: ").bold = True
        paragraph.add_run(segment.text.strip())
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# --- writing ---------------------------------------------------------------------------------------------

def write_atomically(path: str | Path, data: str | bytes, overwrite: bool = False) -> Path:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    Without `overwrite`, an existing `path` raises ExportExistsError (checked again at the rename, which
    never replaces a file that appeared meanwhile). Any failure leaves no temporary file, and the old
    file (if any) untouched."""
    path = Path(path)
    if not overwrite and path.exists():
        raise ExportExistsError(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise ExportError(f"{path.name}: cannot write in {path.parent}: {exc.strerror or exc}") from exc
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        if overwrite:
            os.replace(temp, path)
        else:
            _rename_no_clobber(temp, path)
    except BaseException as exc:
        temp.unlink(missing_ok=True)
        if isinstance(exc, ExportError):
            raise
        if isinstance(exc, OSError):
            raise ExportError(f"{path.name}: could not be written: {exc.strerror or exc}") from exc
        raise
    _sync_folder(path.parent)
    return path


def _rename_no_clobber(temp: Path, path: Path) -> None:
    try:
        os.link(temp, path)  # atomic, and fails if `path` exists
    except FileExistsError:
        raise ExportExistsError(path) from None
    except OSError:  # file systems without hard links: check, then rename
        if path.exists():
            raise ExportExistsError(path) from None
        os.replace(temp, path)
        return
    temp.unlink()


def _sync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def export_transcript(transcript: Transcript, path: str | Path, fmt: str | None = None, overwrite: bool = False,
                      max_line_length: int | None = None, max_lines: int = 2, timestamps: bool = False,
                      rules: SubtitleRules | None = None) -> Path:
    """Render and write one export atomically. `fmt` defaults to the path's suffix. Returns the path."""
    path = Path(path)
    fmt = _check_format(fmt or path.suffix)
    data = render(transcript, fmt, max_line_length=max_line_length, max_lines=max_lines, timestamps=timestamps,
                  rules=rules)
    return write_atomically(path, data, overwrite=overwrite)


def export_paths(sources: Sequence[str | Path | None], folder: str | Path, formats: Iterable[str]) -> list[list[Path]]:
    """Where export_many writes: for each source, <folder>/<stem>.<ext> per format; sources that share
    a stem get "<stem> (2).<ext>", "<stem> (3).<ext>"… so no two exports collide."""
    folder = Path(folder)
    formats = [_check_format(f) for f in formats]
    taken: set[str] = set()
    planned: list[list[Path]] = []
    for index, source in enumerate(sources):
        stem = Path(source).stem if source else f"transcript {index + 1}"
        candidate, n = stem, 1
        while candidate.casefold() in taken:
            n += 1
            candidate = f"{stem} ({n})"
        taken.add(candidate.casefold())
        planned.append([folder / f"{candidate}.{fmt}" for fmt in formats])
    return planned


def export_many(items: Sequence[tuple[Transcript, str | Path | None]], folder: str | Path, formats: Iterable[str],
                overwrite: bool = False, max_line_length: int | None = None, max_lines: int = 2,
                timestamps: bool = False, rules: SubtitleRules | None = None) -> list[Path]:
    """Bulk export: every (transcript, source path) in every format into `folder`. Without `overwrite`,
    nothing is written when any target exists (ExportExistsError names the first). Returns the paths."""
    formats = list(formats)
    planned = export_paths([source for _transcript, source in items], folder, formats)
    if not overwrite:
        for path in (p for paths in planned for p in paths):
            if path.exists():
                raise ExportExistsError(path)
    written: list[Path] = []
    for (transcript, _source), paths in zip(items, planned):
        for fmt, path in zip(formats, paths):
            written.append(export_transcript(transcript, path, fmt, overwrite=overwrite, max_line_length=max_line_length,
                                             max_lines=max_lines, timestamps=timestamps, rules=rules))
    return written


def unique_path(path: str | Path) -> Path:
    """`path`, or "<stem> (2)<suffix>", "(3)"… : the first that does not exist."""
    path = Path(path)
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
    return candidate


def auto_export_paths(source: str | Path, folder: str | Path | None, formats: Iterable[str]) -> list[Path]:
    """Where automatic export writes <stem>.<ext>: `folder`, or next to the source when folder is None/""."""
    source = Path(source)
    target = Path(folder) if folder else source.parent
    return [target / f"{source.stem}.{_check_format(fmt)}" for fmt in formats]


def auto_export(transcript: Transcript, source: str | Path, formats: Iterable[str], folder: str | Path | None = None,
                max_line_length: int | None = None, max_lines: int = 2, timestamps: bool = False,
                rules: SubtitleRules | None = None) -> list[Path]:
    """Automatic export on completion. Never overwrites: an existing file gets a numbered sibling."""
    formats = list(formats)
    written = []
    for fmt, path in zip(formats, auto_export_paths(source, folder, formats)):
        for _attempt in range(5):  # a file that appears between the check and the rename: next number
            try:
                written.append(export_transcript(transcript, unique_path(path), fmt, overwrite=False,
                                                 max_line_length=max_line_length, max_lines=max_lines,
                                                 timestamps=timestamps, rules=rules))
                break
            except ExportExistsError:
                continue
        else:
            raise ExportExistsError(path)
    return written


# --- import ----------------------------------------------------------------------------------------------

def import_subtitles(path: str | Path) -> Transcript:
    """An SRT or WebVTT file as a transcript (one segment per cue, lines joined with spaces).

    Raises MediaError naming the file when it is missing, empty, not subtitles, or has no cues."""
    import pysubs2

    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MediaError(path, f"cannot be read: {exc.strerror or exc}") from exc
    if not raw.strip():
        raise MediaError(path, "the file is empty")
    if b"\x00" in raw[:4096]:
        raise MediaError(path, "not a subtitle file (binary data); choose an .srt or .vtt file")
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    try:
        kind = pysubs2.formats.autodetect_format(text)
    except pysubs2.exceptions.FormatAutodetectionError:
        raise MediaError(path, "not SRT or WebVTT subtitles") from None
    if kind not in ("srt", "vtt", "ass", "ssa"):
        raise MediaError(path, f"not SRT or WebVTT subtitles (looks like {kind})")
    try:
        # SRT/VTT text is kept verbatim (no tag conversion): what was exported comes back unchanged
        subs = pysubs2.SSAFile.from_string(text, format_=kind, keep_html_tags=True)
    except Exception as exc:  # pysubs2 parse errors: the reason in one line
        raise MediaError(path, f"not readable as subtitles ({' '.join(str(exc).split())[:200]})") from exc
    segments: list[Segment] = []
    for event in subs:
        if event.is_comment:
            continue
        if kind in ("srt", "vtt"):
            body = event.text.replace(r"\N", "\n").replace(r"\n", "\n").replace(r"\h", " ")
            if kind == "vtt":  # WebVTT markup (<v Name>, <c.x>, <i>) is dropped; entities decoded
                body = html.unescape(re.sub(r"<[^>\n]*>", "", body))
            else:  # SRT formatting tags are markup players render, not words
                body = _SRT_TAGS.sub("", body)
        else:
            body = event.plaintext
        text = " ".join(line.strip() for line in body.splitlines() if line.strip())
        if not text:
            continue
        start = max(0, event.start) / 1000
        segments.append(Segment(len(segments), start, max(start, event.end / 1000), text))
    if not segments:
        raise MediaError(path, "has no subtitle cues")
    return Transcript(
        segments=segments,
        duration=max(s.end for s in segments),
        model=f"imported from {path.name}",
        backend="import",
        source=str(path),
    )

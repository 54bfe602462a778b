"""The one export pipeline: every way a transcript leaves the app (the export dialog, `whisper-desk transcribe`,
automatic export, watch folders, karaoke, bulk export) writes its files through an Exporter, so the same
transcript with the same rules gives the same bytes whichever way it left. Also subtitle import.

    exporter = Exporter(rules, timestamps=False, aligner=aligner)
    exporter.write(transcript, "talk.srt")               # Exported(path, report)
    exporter.write_beside(transcript, source, ["srt"])   # automatic export: never overwrites
    render(transcript, "json")                           # the text (bytes for DOCX), nothing written

What a file needs comes first: subtitles cut by the rules and JSON are made from word timestamps, so a
transcript whose words no longer spell its text (edited, imported, made without them) gets them from its audio
through the injected WordAligner (worker.jobs.export wires in worker.engines.alignment), once per transcript.
Without an aligner, or without the audio, subtitles are timed by characters and JSON has no words there.

Subtitles (SRT, VTT, ASS) come from worker.transcripts.subtitles, the one cue engine: with SubtitleRules the cues
are re-cut from the words; without (None), SRT and VTT keep one cue per segment (ASS always follows rules).
TXT, TSV, JSON and DOCX come from worker.transcripts.documents. Files are written atomically: a temporary file
in the target folder, fsync, then a rename, so a crash never leaves a half-written export.
"""

from __future__ import annotations

import html
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol, Sequence

from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, MediaError, WhisperDeskError, exception_line
from worker.transcripts import documents
from worker.transcripts.model import Segment, Transcript
from worker.transcripts.subtitles import RULE_FORMATS, CutResult, SubtitleRules, make_cues, render_cues

EXPORT_FORMATS: tuple[str, ...] = ("txt", "srt", "vtt", "json", "tsv", "docx", "ass")
FORMAT_LABELS = {
    "txt": "Plain text (.txt)",
    "srt": "SubRip subtitles (.srt)",
    "vtt": "WebVTT subtitles (.vtt)",
    "json": "JSON with segments and words, as openai-whisper writes it (.json)",
    "tsv": "Tab-separated start/end/text in ms (.tsv)",
    "docx": "Word document (.docx)",
    "ass": "ASS subtitles, karaoke-ready (.ass)",
}
WORD_FORMATS = ("srt", "vtt", "ass", "json")  # made from word timestamps: their jobs ask the engine for words
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


def check_format(fmt: str) -> str:
    """`fmt` as one of EXPORT_FORMATS ("SRT", ".srt" -> "srt"); ExportError (one line) for any other."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def word_timestamps_needed(formats: Iterable[str]) -> bool:
    """Whether a job whose transcript is exported in `formats` should ask the engine for word timestamps."""
    return any(fmt.lower().lstrip(".") in WORD_FORMATS for fmt in formats)


# --- the pipeline --------------------------------------------------------------------------------------------

class WordAligner(Protocol):
    """Computes the word timestamps a transcript lacks from its audio (worker.engines.alignment.Aligner): a copy
    with them, and how many segments got them. Raises WhisperDeskError when it cannot, Cancelled on cancel."""

    def align(self, transcript: Transcript, path: str | Path,
              cancel: CancelToken | None = None) -> tuple[Transcript, int]: ...


@dataclass(frozen=True)
class Rendered:
    data: str | bytes  # bytes for DOCX
    report: str = ""  # subtitles cut by rules: what could not follow them, in one line ("" when all hold)


@dataclass(frozen=True)
class Exported:
    path: Path
    report: str = ""  # as Rendered.report


class Exporter:
    """Renders and writes transcripts with one set of choices: the subtitle rules (None: one cue per segment
    for SRT and VTT), `timestamps` (TXT and DOCX lines start with their time range), the aligner that fills in
    missing word timestamps (None: none are computed) and a cancel token for that alignment. Aligned copies are
    kept per transcript, so each is aligned once whatever the number of formats. Safe to use from one thread."""

    def __init__(self, rules: SubtitleRules | None = None, *, timestamps: bool = False,
                 aligner: WordAligner | None = None, cancel: CancelToken | None = None) -> None:
        self.rules = rules
        self.timestamps = timestamps
        self.aligner = aligner
        self.cancel = cancel
        self.notes: list[str] = []  # word timestamps that could not be computed, one line per transcript
        self._aligned: dict[tuple[int, str], tuple[Transcript, Transcript]] = {}  # key -> (original, aligned)

    # rendering

    def subtitle_rules(self, fmt: str) -> SubtitleRules | None:
        """The rules the cues of `fmt` follow (None: one cue per segment); ASS always follows rules."""
        return (self.rules or SubtitleRules()) if fmt == "ass" else self.rules

    def needs_words(self, fmt: str) -> bool:
        """Whether `fmt` is made from word timestamps with these choices."""
        return fmt == "json" or (fmt in RULE_FORMATS and self.subtitle_rules(fmt) is not None)

    def prepared(self, transcript: Transcript, fmt: str, audio: str | Path | None = None) -> Transcript:
        """`transcript` as `fmt` is made from it: with the word timestamps it lacks computed from `audio` (default:
        its source) when the format needs words and an aligner is given. Raises Cancelled on cancel."""
        if self.aligner is None or not self.needs_words(check_format(fmt)):
            return transcript
        path = audio if audio is not None else transcript.source
        if not path or not Path(path).is_file():
            return transcript  # no audio to align with: subtitles are timed by characters (their report says so)
        key = (id(transcript), str(path))
        if key not in self._aligned:
            aligned = transcript
            try:
                aligned, _count = self.aligner.align(transcript, path, self.cancel)
            except Cancelled:
                raise
            except Exception as exc:  # timed by characters instead; said once, in the notes
                self.notes.append(f"{Path(path).name}: word timestamps could not be computed ({exception_line(exc)})")
            self._aligned[key] = (transcript, aligned)  # the original is held so its id is not reused
        return self._aligned[key][1]

    def render(self, transcript: Transcript, fmt: str, audio: str | Path | None = None) -> Rendered:
        """The transcript in `fmt` (one of EXPORT_FORMATS), with its subtitle report."""
        fmt = check_format(fmt)
        transcript = self.prepared(transcript, fmt, audio)
        if fmt in RULE_FORMATS:
            result: CutResult = make_cues(transcript, self.subtitle_rules(fmt))
            # keep_ssa_tags (in render_cues): SRT/VTT text goes out verbatim
            return Rendered(render_cues(result, fmt, {s.id: s.name for s in transcript.speakers}), result.report_line())
        if fmt == "json":
            return Rendered(documents.whisper_json(transcript))
        if fmt == "tsv":
            return Rendered(documents.tsv(transcript))
        if fmt == "txt":
            return Rendered(documents.txt(transcript, self.timestamps))
        return Rendered(documents.docx_bytes(transcript, self.timestamps))

    # writing

    def write(self, transcript: Transcript, path: str | Path, fmt: str | None = None, *, overwrite: bool = False,
              audio: str | Path | None = None) -> Exported:
        """Render and write one file atomically; `fmt` defaults to the path's suffix. Without `overwrite`, an
        existing file raises ExportExistsError."""
        path = Path(path)
        rendered = self.render(transcript, check_format(fmt or path.suffix), audio)
        return Exported(write_atomically(path, rendered.data, overwrite=overwrite), rendered.report)

    def write_new(self, transcript: Transcript, path: str | Path, fmt: str | None = None,
                  audio: str | Path | None = None) -> Exported:
        """As write, never overwriting: an existing `path` gets a numbered sibling ("talk (2).srt")."""
        path = Path(path)
        fmt = check_format(fmt or path.suffix)
        rendered = self.render(transcript, fmt, audio)
        for _attempt in range(5):  # a file that appears between the check and the rename: next number
            try:
                return Exported(write_atomically(unique_path(path), rendered.data), rendered.report)
            except ExportExistsError:
                continue
        raise ExportExistsError(path)

    def write_many(self, items: Sequence[tuple[Transcript, str | Path | None]], folder: str | Path,
                   formats: Iterable[str], overwrite: bool = False) -> list[Path]:
        """Bulk export: every (transcript, source path) in every format into `folder` (export_paths). Without
        `overwrite`, nothing is written when any target exists (ExportExistsError names the first)."""
        formats = [check_format(fmt) for fmt in formats]
        planned = export_paths([source for _transcript, source in items], folder, formats)
        if not overwrite:
            for path in (p for paths in planned for p in paths):
                if path.exists():
                    raise ExportExistsError(path)
        written: list[Path] = []
        for (transcript, source), paths in zip(items, planned):
            for fmt, path in zip(formats, paths):
                written.append(self.write(transcript, path, fmt, overwrite=overwrite, audio=source).path)
        return written

    def write_beside(self, transcript: Transcript, source: str | Path, formats: Iterable[str],
                     folder: str | Path | None = None) -> list[Path]:
        """Automatic export: <stem>.<ext> per format in `folder`, or next to `source` when folder is None/"";
        never overwrites (numbered siblings). Word timestamps come from `source`."""
        formats = [check_format(fmt) for fmt in formats]
        return [self.write_new(transcript, path, fmt, audio=source).path
                for fmt, path in zip(formats, auto_export_paths(source, folder, formats))]


# --- one call each ---------------------------------------------------------------------------------------------

def render(transcript: Transcript, fmt: str, rules: SubtitleRules | None = None, timestamps: bool = False,
           aligner: WordAligner | None = None) -> str | bytes:
    """The transcript in `fmt` (one of EXPORT_FORMATS): str for text formats, bytes for DOCX (Exporter.render)."""
    return Exporter(rules, timestamps=timestamps, aligner=aligner).render(transcript, fmt).data


def export_transcript(transcript: Transcript, path: str | Path, fmt: str | None = None, overwrite: bool = False,
                      timestamps: bool = False, rules: SubtitleRules | None = None,
                      aligner: WordAligner | None = None) -> Path:
    """Render and write one export atomically (Exporter.write). `fmt` defaults to the path's suffix."""
    return Exporter(rules, timestamps=timestamps, aligner=aligner).write(transcript, path, fmt, overwrite=overwrite).path


def export_many(items: Sequence[tuple[Transcript, str | Path | None]], folder: str | Path, formats: Iterable[str],
                overwrite: bool = False, timestamps: bool = False, rules: SubtitleRules | None = None,
                aligner: WordAligner | None = None) -> list[Path]:
    """Bulk export (Exporter.write_many). Returns the paths."""
    return Exporter(rules, timestamps=timestamps, aligner=aligner).write_many(items, folder, formats, overwrite)


def auto_export(transcript: Transcript, source: str | Path, formats: Iterable[str], folder: str | Path | None = None,
                timestamps: bool = False, rules: SubtitleRules | None = None,
                aligner: WordAligner | None = None) -> list[Path]:
    """Automatic export on completion (Exporter.write_beside): never overwrites."""
    return Exporter(rules, timestamps=timestamps, aligner=aligner).write_beside(transcript, source, formats, folder)


def export_paths(sources: Sequence[str | Path | None], folder: str | Path, formats: Iterable[str]) -> list[list[Path]]:
    """Where bulk export writes: for each source, <folder>/<stem>.<ext> per format; sources that share
    a stem get "<stem> (2).<ext>", "<stem> (3).<ext>"… so no two exports collide."""
    folder = Path(folder)
    formats = [check_format(f) for f in formats]
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
    return [target / f"{source.stem}.{check_format(fmt)}" for fmt in formats]


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

"""The export pipeline as every path calls it: the export dialog, `whisper-desk transcribe`, automatic export,
watch folders, karaoke and bulk export all get their Exporter (worker.transcripts.formats) here, with the forced
aligner (worker.engines.alignment) wired in, so missing word timestamps are computed the same way whichever way a
transcript leaves. The aligner loads its model only when a transcript needs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from worker.core.cancel import CancelToken
from worker.core.errors import exception_line
from worker.transcripts.formats import Exporter
from worker.transcripts.model import Transcript
from worker.transcripts.subtitles import SubtitleRules


def exporter(rules: SubtitleRules | None, *, timestamps: bool = False, cancel: CancelToken | None = None) -> Exporter:
    """An Exporter that aligns the words a transcript lacks from its audio (rules None: one cue per segment)."""
    from worker.engines.alignment import Aligner

    return Exporter(rules, timestamps=timestamps, aligner=Aligner(), cancel=cancel)


@dataclass(frozen=True)
class Outcome:
    """One format of an automatic export: the file written, or why it could not be (one line)."""

    fmt: str
    path: Path | None = None
    problem: str = ""


def export_beside(transcript: Transcript, source: str | Path, formats: Iterable[str], folder: str | Path | None,
                  rules: SubtitleRules | None) -> tuple[list[Outcome], list[str]]:
    """Automatic export (a finished job, a watched file): each format in `folder` or next to `source`, never
    overwriting. A format that cannot be written never stops the others. Returns the outcomes in the order of
    `formats`, and the exporter's notes (word timestamps that could not be computed)."""
    pipeline = exporter(rules)
    outcomes: list[Outcome] = []
    for fmt in formats:
        try:
            [path] = pipeline.write_beside(transcript, source, [fmt], folder)
            outcomes.append(Outcome(fmt, path))
        except Exception as exc:  # reported by the caller; an export problem never fails the job or the watcher
            outcomes.append(Outcome(fmt, problem=exception_line(exc)))
    return outcomes, list(pipeline.notes)


__all__ = ["Outcome", "export_beside", "exporter"]

"""The search index: every segment of every transcript (the edited text when there is one) in an FTS5 table.
Saved transcripts are indexed by triggers (worker.library.migrations); segments streaming in are added here."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Iterable

from worker.library.database import Database
from worker.transcripts.model import Segment


@dataclass(frozen=True)
class SegmentMatch:
    """One segment an FTS5 expression matched: `snippet` holds the matches between the marks asked for."""

    job_id: int
    path: str
    segment: int
    start: float
    text: str
    snippet: str


class SearchIndex:
    def __init__(self, database: Database) -> None:
        self._db = database

    def append(self, job_id: int, segments: Iterable[Segment]) -> None:
        """Index segments as they stream in, after the job's last indexed one. A job with a saved transcript
        keeps that transcript's index until the new one is saved; a batch that starts before the last indexed
        segment means the job started over (retry, recovery), so its partial index is replaced. The index is
        a convenience: a write the disk refuses is skipped, never a job's failure (saving re-indexes it)."""
        segments = list(segments)
        if not segments or self._db.read_only:
            return
        try:
            with self._db.transaction() as db:
                job_known = db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone()
                saved = db.execute("SELECT 1 FROM transcripts WHERE job_id = ?", (job_id,)).fetchone()
                if not job_known or saved:
                    return
                last = db.execute("SELECT segment, start FROM segment_texts WHERE job_id = ? ORDER BY segment DESC LIMIT 1",
                                  (job_id,)).fetchone()
                first_index = 0
                if last is not None and segments[0].start <= last["start"]:
                    db.execute("DELETE FROM segment_texts WHERE job_id = ?", (job_id,))
                elif last is not None:
                    first_index = last["segment"] + 1
                db.executemany("INSERT INTO segment_texts (job_id, segment, start, text) VALUES (?, ?, ?, ?)",
                               [(job_id, first_index + n, s.start, s.text) for n, s in enumerate(segments)])
        except sqlite3.Error:
            return  # the index is rebuilt from the transcript when it is saved

    def search(self, match: str, limit: int, marks: tuple[str, str], ellipsis: str, snippet_tokens: int) -> list[SegmentMatch]:
        """Segments matching an FTS5 expression (worker.library.search builds it), best first. Only jobs with a
        transcript, or running now."""
        rows = self._db.rows(
            "SELECT st.job_id, j.path, st.segment, st.start, st.text, "
            "snippet(segments_fts, 0, ?, ?, ?, ?) AS snippet "
            "FROM segments_fts JOIN segment_texts AS st ON st.id = segments_fts.rowid "
            "JOIN jobs AS j ON j.id = st.job_id "
            "WHERE segments_fts MATCH ? "
            "AND (j.status = 'running' OR EXISTS (SELECT 1 FROM transcripts AS t WHERE t.job_id = st.job_id)) "
            "ORDER BY rank, st.job_id, st.segment LIMIT ?",
            (marks[0], marks[1], ellipsis, snippet_tokens, match, limit),
        )
        return [SegmentMatch(row["job_id"], row["path"], row["segment"], row["start"], row["text"], row["snippet"])
                for row in rows]

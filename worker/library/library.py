"""The library as the rest of the app holds it: one SQLite file (worker.library.database) and a typed store per
concern over it. Callers say what they mean: `library.jobs.mark_started(...)`, `library.transcripts.get(...)`."""

from __future__ import annotations

from pathlib import Path

from worker.library.database import Database
from worker.library.job_log import JobLog
from worker.library.jobs import LEASE_S, JobStore
from worker.library.modal_calls import LibraryChunkLedger
from worker.library.search_index import SearchIndex
from worker.library.transcripts import TranscriptStore
from worker.library.voices import VoiceStore
from worker.library.watched_files import WatchedFileStore


class Library:
    """Thread-safe: every store shares the database's one connection and lock."""

    def __init__(self, path: str | Path | None = None, lease_s: float = LEASE_S) -> None:
        self.database = Database(path)
        self.jobs = JobStore(self.database, lease_s)
        self.transcripts = TranscriptStore(self.database)
        self.search_index = SearchIndex(self.database)
        self.watched_files = WatchedFileStore(self.database)
        self.voices = VoiceStore(self.database)
        self.log = JobLog(self.database)

    def chunk_ledger(self, job_id: int) -> LibraryChunkLedger:
        """Where job `job_id`'s Modal calls are written down as they are sent (see ChunkLedger)."""
        return LibraryChunkLedger(self.database, job_id)

    # the file as a whole
    @property
    def path(self) -> Path:
        return self.database.path

    @property
    def read_only(self) -> bool:
        """A newer version's library: read, never written."""
        return self.database.read_only

    @property
    def notice(self) -> str | None:
        """One line for the window: what opening the library had to do (set aside, in memory, read-only)."""
        return self.database.notice

    @property
    def problem(self) -> str | None:
        """One line while writes fail (disk full, read-only folder)."""
        return self.database.problem

    @property
    def unsaved(self) -> int:
        return self.database.unsaved

    @property
    def schema_version(self) -> int:
        return self.database.schema_version

    def retry_kept(self) -> bool:
        return self.database.retry_kept()

    def close(self) -> None:
        self.database.close()

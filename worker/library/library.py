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

    # TRANSITION (issue 16): the one-class names, kept only until every caller uses the stores above
    def add_job(self, path, options, backend):  # type: ignore[no-untyped-def]
        return self.jobs.add(path, options, backend)

    def add_jobs(self, paths, options, backend):  # type: ignore[no-untyped-def]
        return self.jobs.add_many(paths, options, backend)

    def job(self, job_id):  # type: ignore[no-untyped-def]
        return self.jobs.get(job_id)

    def update_job(self, job_id, **fields):  # type: ignore[no-untyped-def]
        import json

        from worker.core.options import TranscriptionOptions
        from worker.library.job_status import JobStatus

        if "status" in fields:
            fields["status"] = JobStatus(fields["status"]).value
        if isinstance(fields.get("options"), TranscriptionOptions):
            fields["options"] = json.dumps(fields["options"].to_dict())
        if fields:
            self.jobs._update(job_id, fields)

    def remove_job(self, job_id):  # type: ignore[no-untyped-def]
        return self.jobs.remove(job_id)

    def move_job(self, job_id, before_job_id):  # type: ignore[no-untyped-def]
        return self.jobs.move(job_id, before_job_id)

    def claim_job(self, job_id, owner):  # type: ignore[no-untyped-def]
        return self.jobs.claim(job_id, owner)

    def heartbeat(self, owner):  # type: ignore[no-untyped-def]
        return self.jobs.heartbeat(owner)

    def release_job(self, job_id, owner):  # type: ignore[no-untyped-def]
        return self.jobs.release(job_id, owner)

    def recover_interrupted(self):  # type: ignore[no-untyped-def]
        return self.jobs.recover_interrupted()

    def save_transcript(self, job_id, transcript):  # type: ignore[no-untyped-def]
        return self.transcripts.save(job_id, transcript)

    def save_edit(self, job_id, transcript):  # type: ignore[no-untyped-def]
        return self.transcripts.save_edit(job_id, transcript)

    def revert_edit(self, job_id):  # type: ignore[no-untyped-def]
        return self.transcripts.revert_edit(job_id)

    def transcript(self, job_id):  # type: ignore[no-untyped-def]
        return self.transcripts.get(job_id)

    def original_transcript(self, job_id):  # type: ignore[no-untyped-def]
        return self.transcripts.original(job_id)

    def is_edited(self, job_id):  # type: ignore[no-untyped-def]
        return self.transcripts.is_edited(job_id)

    def append_segments(self, job_id, segments):  # type: ignore[no-untyped-def]
        return self.search_index.append(job_id, segments)

    def watched_file(self, path):  # type: ignore[no-untyped-def]
        return self.watched_files.get(path)

    def claim_watched_file(self, path, size, mtime, state, stale_s):  # type: ignore[no-untyped-def]
        return self.watched_files.claim(path, size, mtime, state, stale_s)

    def set_watched_file(self, path, size, mtime, job_id, state):  # type: ignore[no-untyped-def]
        return self.watched_files.set(path, size, mtime, job_id, state)

    def save_voice(self, name, embedding):  # type: ignore[no-untyped-def]
        return self.voices.save(name, embedding)

    def delete_voice(self, voice_id):  # type: ignore[no-untyped-def]
        return self.voices.delete(voice_id)

    def add_log_line(self, job_id, line):  # type: ignore[no-untyped-def]
        return self.log.add(job_id, line)

    def log_lines(self, job_id=None):  # type: ignore[no-untyped-def]
        return self.log.lines(job_id)

    @property
    def lease_s(self):  # type: ignore[no-untyped-def]
        return self.jobs.lease_s

    @lease_s.setter
    def lease_s(self, value):  # type: ignore[no-untyped-def]
        self.jobs.lease_s = value

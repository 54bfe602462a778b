"""The library: jobs and their transcripts in SQLite, written as they change.

Every write is its own transaction (WAL journal), so a process killed at any moment leaves the
last committed state: no half-written transcript, and a queue that can be restored.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from worker.backends.base import SentChunk
from worker.core.errors import exception_line
from worker.core.options import TranscriptionOptions
from worker.library.job_status import JobStatus
from worker.transcripts.model import Segment, Transcript

_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL,
    backend TEXT NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    error TEXT,
    error_detail TEXT,
    duration REAL,
    position REAL NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    elapsed REAL
);
CREATE TABLE IF NOT EXISTS transcripts (
    job_id INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    original TEXT NOT NULL,
    edited TEXT,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
    line TEXT NOT NULL,
    created REAL NOT NULL
);
"""

# Migration N brings a library from schema version N-1 to N (PRAGMA user_version). Append, never edit.
MIGRATIONS: list[str] = [
    _SCHEMA_V1,
    # the Modal calls each chunk of a job runs as (worker.backends.base.ChunkLedger): collected after a crash
    """
    CREATE TABLE modal_calls (
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        chunk_index INTEGER NOT NULL,
        start_s REAL NOT NULL,
        end_s REAL NOT NULL,
        call_id TEXT NOT NULL,
        finished INTEGER NOT NULL DEFAULT 0,
        sent REAL NOT NULL,
        PRIMARY KEY (job_id, chunk_index)
    );
    """,
    # leases: the process running a job (worker.library.lease_owner()) and until when its claim holds
    """
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_expires REAL;
    """,
    # search: every segment of every transcript (the edited text when there is one) in an FTS5 index, kept
    # current by triggers on transcripts; segments streaming in are added by Library.append_segments
    """
    CREATE TABLE segment_texts (
        id INTEGER PRIMARY KEY,
        job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        segment INTEGER NOT NULL,
        start REAL NOT NULL,
        text TEXT NOT NULL,
        UNIQUE (job_id, segment)
    );
    CREATE VIRTUAL TABLE segments_fts USING fts5(
        text, content='segment_texts', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER segment_texts_added AFTER INSERT ON segment_texts BEGIN
        INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER segment_texts_removed AFTER DELETE ON segment_texts BEGIN
        INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER segment_texts_changed AFTER UPDATE ON segment_texts BEGIN
        INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER transcript_saved AFTER INSERT ON transcripts BEGIN
        DELETE FROM segment_texts WHERE job_id = new.job_id;
        INSERT INTO segment_texts (job_id, segment, start, text)
            SELECT new.job_id, CAST(key AS INTEGER), json_extract(value, '$.start'), json_extract(value, '$.text')
            FROM json_each(COALESCE(new.edited, new.original), '$.segments');
    END;
    CREATE TRIGGER transcript_changed AFTER UPDATE OF original, edited ON transcripts BEGIN
        DELETE FROM segment_texts WHERE job_id = new.job_id;
        INSERT INTO segment_texts (job_id, segment, start, text)
            SELECT new.job_id, CAST(key AS INTEGER), json_extract(value, '$.start'), json_extract(value, '$.text')
            FROM json_each(COALESCE(new.edited, new.original), '$.segments');
    END;
    INSERT INTO segment_texts (job_id, segment, start, text)
        SELECT t.job_id, CAST(s.key AS INTEGER), json_extract(s.value, '$.start'), json_extract(s.value, '$.text')
        FROM transcripts AS t, json_each(COALESCE(t.edited, t.original), '$.segments') AS s;
    """,
    # watch folders (worker.jobs.watch): each media file seen, and the job that transcribes it, across restarts
    """
    CREATE TABLE watched_files (
        path TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        job_id INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
        state TEXT NOT NULL,
        updated REAL NOT NULL
    );
    """,
    # known voices (worker.speakers): a named speaker's averaged voice embedding (float32 bytes, never audio)
    """
    CREATE TABLE known_voices (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        embedding BLOB NOT NULL,
        count INTEGER NOT NULL DEFAULT 1,
        created REAL NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

# A running job belongs to the process holding its lease; the holder renews it every HEARTBEAT_S, and a
# lease not renewed for LEASE_S (or whose process on this host is gone) lets another process recover the job.
LEASE_S = 30.0
HEARTBEAT_S = LEASE_S / 3

STATUSES = tuple(status.value for status in JobStatus)


@dataclass
class JobRecord:
    id: int
    path: str
    backend: str
    options: TranscriptionOptions
    status: JobStatus
    error: str | None
    error_detail: str | None
    duration: float | None
    position: float
    created: float
    started: float | None
    finished: float | None
    elapsed: float | None

    @property
    def name(self) -> str:
        return Path(self.path).name


@dataclass(frozen=True)
class KnownVoice:
    """A voice named once and recognised in later files: `embedding` is the L2-normalised average of the
    `count` speaker embeddings saved under `name`."""

    id: int
    name: str
    embedding: tuple[float, ...]
    count: int
    created: float


def default_library_path() -> Path:
    from platformdirs import user_data_dir

    from worker.core.constants import APP_DIRS_NAME

    return Path(user_data_dir(APP_DIRS_NAME, appauthor=False)) / "library.sqlite3"


class Library:
    """Thread-safe: one connection guarded by a lock (writes are small and fast)."""

    def __init__(self, path: str | Path | None = None, lease_s: float = LEASE_S) -> None:
        self.path = Path(path) if path is not None else default_library_path()
        self.lease_s = lease_s
        self.read_only = False  # a newer version's library: read, never written
        self.notice: str | None = None  # one line for the window: what opening the library had to do
        self.problem: str | None = None  # one line while writes fail (disk full, read-only folder)
        self._kept: list[tuple[str, tuple[Any, ...]]] = []  # writes the disk refused, retried in order
        self._kept_jobs: dict[int, dict[str, Any]] = {}  # ... and what they change, for reads meanwhile
        self._kept_transcripts: dict[int, dict[str, str | None]] = {}
        self._lock = threading.RLock()
        self._open()

    def _open(self) -> None:
        """Open (and migrate) the library file. A damaged file is set aside and a fresh library carries over
        what can be read; an unwritable folder gives a library in memory. Both leave a `notice`."""
        if str(self.path) == ":memory:":
            return self._connect(":memory:")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return self._connect(str(self.path))
        except sqlite3.OperationalError as error:
            if not _is_storage_error(error):
                raise
            reason: str = _storage_reason(error)
        except OSError as error:
            reason = error.strerror or str(error)
        except sqlite3.DatabaseError as error:
            from worker.library.repair import carry_over, set_aside

            try:
                aside = set_aside(self.path)
                self._connect(str(self.path))
            except (OSError, sqlite3.OperationalError) as unwritable:
                reason = _storage_reason(unwritable) if isinstance(unwritable, sqlite3.Error) else str(unwritable)
            else:
                with self._lock:
                    carried = carry_over(aside, self._db)
                self.notice = (f"The library was damaged ({exception_line(error)}): it was kept as {aside.name} and a new "
                               f"library was started with {carried} job(s) carried over.")
                return None
        self._connect(":memory:")
        shown = self._load_unwritable_file()
        if self.read_only:  # a newer version's library, in a folder that can't be written either
            self.notice = _newer_notice(self.schema_version)
            return None
        kept = f"its {shown} job(s) are shown, but " if shown else ""
        self.notice = (f"Can't write the library at {self.path} ({reason}): {kept}this session is kept in memory "
                       f"only, so export transcripts before closing.")
        return None

    def _load_unwritable_file(self) -> int:
        """Copy a library file that can be read but not written into the in-memory library, so the user's
        transcripts stay in view; the number of jobs it holds (0 when there is nothing readable)."""
        try:
            if not self.path.is_file():
                return 0
        except OSError:
            return 0
        uri = Path(os.path.abspath(self.path)).as_uri()
        for mode in ("ro", "ro&immutable=1"):  # immutable: a WAL left where its index can't be made
            try:
                source = sqlite3.connect(f"{uri}?mode={mode}", uri=True)
                try:
                    with self._lock:
                        source.backup(self._db)
                        (version,) = self._db.execute("PRAGMA user_version").fetchone()
                        if version > SCHEMA_VERSION:
                            self.read_only = True
                            self._db.execute("PRAGMA query_only = ON")
                        else:
                            self._migrate()
                        return int(self._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
                finally:
                    source.close()
            except sqlite3.Error:
                self._db.close()  # a partial copy is dropped: start clean
                self._connect(":memory:")
        return 0

    def _connect(self, target: str) -> None:
        db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            (version,) = db.execute("PRAGMA user_version").fetchone()  # random bytes fail here
            if version > SCHEMA_VERSION:
                db.execute("PRAGMA query_only = ON")
                self._db, self.read_only = db, True
                self.notice = _newer_notice(version)
                return
            if version > 0:
                (verdict,) = db.execute("PRAGMA quick_check(1)").fetchone()  # damaged pages
                if verdict != "ok":
                    raise sqlite3.DatabaseError(verdict)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            self._db = db
            self._migrate()
        except BaseException:
            db.close()
            raise

    def _migrate(self) -> None:
        """Bring the schema up to SCHEMA_VERSION, one migration per transaction."""
        with self._lock:
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            for number in range(version + 1, SCHEMA_VERSION + 1):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _statements(MIGRATIONS[number - 1]):
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {number}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(sql, args)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # a failed COMMIT may already have rolled back
                    self._db.execute("ROLLBACK")
                raise
            return cursor

    def _write_or_keep(self, sql: str, args: tuple[Any, ...] = ()) -> bool:
        """Write, or keep the write in memory when the disk refuses it (full, read-only; or a read-only
        library) to retry later in order. Returns False when it was kept."""
        with self._lock:
            if self.read_only or (self._kept and not self.retry_kept()):
                self._kept.append((sql, args))
                return False
            try:
                self._write(sql, args)
            except sqlite3.OperationalError as error:
                if not _is_storage_error(error):
                    raise
                self._kept.append((sql, args))
                self._note_problem(error)
                return False
            return True

    def retry_kept(self) -> bool:
        """Write what the disk refused before; True when nothing is left in memory. The window calls it
        every few seconds while `problem` is set."""
        with self._lock:
            if self.read_only:
                return not self._kept
            while self._kept:
                sql, args = self._kept[0]
                try:
                    self._write(sql, args)
                except sqlite3.Error as error:
                    if _is_storage_error(error):
                        self._note_problem(error)
                        return False
                    # anything else (e.g. its job was removed meanwhile) will never succeed: drop it
                self._kept.pop(0)
            self._kept_jobs.clear()
            self._kept_transcripts.clear()
            self.problem = None
            return True

    @property
    def unsaved(self) -> int:
        """How many writes are kept in memory, waiting for the disk."""
        with self._lock:
            return len(self._kept)

    def _note_problem(self, error: sqlite3.Error) -> None:
        self.problem = (f"Can't save to the library ({_storage_reason(error)}): changes are kept in memory and "
                        f"saved when it works again; export transcripts to be safe.")

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> Iterator[sqlite3.Row]:
        with self._lock:
            return iter(self._db.execute(sql, args).fetchall())

    # jobs
    def add_job(self, path: str | Path, options: TranscriptionOptions, backend: str) -> JobRecord:
        [job] = self.add_jobs([path], options, backend)
        return job

    def add_jobs(self, paths: Iterable[str | Path], options: TranscriptionOptions, backend: str) -> list[JobRecord]:
        """Queue many files at the end, in the given order, in one transaction (thousands stay fast)."""
        now = time.time()
        options_json = json.dumps(options.to_dict())
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                (max_position,) = self._db.execute("SELECT COALESCE(MAX(position), 0) FROM jobs").fetchone()
                ids = [
                    _row_id(self._db.execute(
                        "INSERT INTO jobs (path, backend, options, position, created) VALUES (?, ?, ?, ?, ?)",
                        (str(path), backend, options_json, max_position + offset, now),
                    ))
                    for offset, path in enumerate(paths, start=1)
                ]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._jobs_by_id(ids)

    def _jobs_by_id(self, ids: list[int]) -> list[JobRecord]:
        """The jobs with these ids, in the same order (one query for a whole range of new ids)."""
        if not ids:
            return []
        rows = self._rows("SELECT * FROM jobs WHERE id BETWEEN ? AND ?", (min(ids), max(ids)))
        by_id = {row["id"]: self._job_record(row) for row in rows}
        return [by_id[job_id] for job_id in ids]

    def job(self, job_id: int) -> JobRecord | None:
        rows = list(self._rows("SELECT * FROM jobs WHERE id = ?", (job_id,)))
        return self._job_record(rows[0]) if rows else None

    def jobs(self) -> list[JobRecord]:
        return [self._job_record(r) for r in self._rows("SELECT * FROM jobs ORDER BY position, id")]

    def _job_record(self, row: sqlite3.Row) -> JobRecord:
        """The job as stored, with any change still kept in memory applied."""
        kept = self._kept_jobs.get(row["id"])
        return _job_from_row({**dict(row), **kept} if kept else row)

    def update_job(self, job_id: int, **fields: Any) -> None:
        allowed = {"status", "error", "error_detail", "duration", "started", "finished", "elapsed", "backend", "options", "position"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown job fields: {sorted(unknown)}")
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"unknown status {fields['status']!r}")
        if isinstance(fields.get("options"), TranscriptionOptions):
            fields["options"] = json.dumps(fields["options"].to_dict())
        if not fields:
            return
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._lock:
            if not self._write_or_keep(f"UPDATE jobs SET {assignments} WHERE id = ?", (*fields.values(), job_id)):
                self._kept_jobs.setdefault(job_id, {}).update(fields)

    def remove_job(self, job_id: int) -> None:
        self._write("DELETE FROM jobs WHERE id = ?", (job_id,))

    def move_job(self, job_id: int, before_job_id: int | None) -> None:
        """Put `job_id` just before `before_job_id` (None: at the end)."""
        order = [j.id for j in self.jobs() if j.id != job_id]
        index = order.index(before_job_id) if before_job_id in order else len(order)
        order.insert(index, job_id)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for position, jid in enumerate(order, start=1):
                    self._db.execute("UPDATE jobs SET position = ? WHERE id = ?", (position, jid))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    # leases: one process runs a job, however many share the library
    def claim_job(self, job_id: int, owner: str) -> bool:
        """Atomically move a queued job to 'running' under `owner`'s lease. False when the job is not
        queued, or another live owner holds it (a job whose lease lapsed, or whose owner died, can be taken),
        or the disk refuses the claim (then `problem` says so: nothing runs that the library cannot record)."""
        now = time.time()
        if self.read_only:
            return False  # a newer version's library runs nothing here
        with self._lock:
            try:
                return self._claim(job_id, owner, now)
            except sqlite3.OperationalError as error:
                if not _is_storage_error(error):
                    raise
                self._note_problem(error)
                return False

    def _claim(self, job_id: int, owner: str, now: float) -> bool:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT status, lease_owner, lease_expires FROM jobs WHERE id = ?", (job_id,)
                ).fetchone()
                free = row is not None and (
                    row["status"] == JobStatus.QUEUED
                    or (row["status"] == JobStatus.RUNNING
                        and (row["lease_owner"] == owner or _lease_lapsed(row["lease_owner"], row["lease_expires"], now)))
                )
                if free:
                    self._db.execute(
                        "UPDATE jobs SET status = 'running', started = COALESCE(?, started), lease_owner = ?, "
                        "lease_expires = ? WHERE id = ?",
                        (now if row["status"] == JobStatus.QUEUED else None, owner, now + self.lease_s, job_id),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return free

    def heartbeat(self, owner: str) -> int:
        """Renew every lease `owner` holds on a running job; returns how many."""
        if self.read_only:
            return 0
        return self._write(
            "UPDATE jobs SET lease_expires = ? WHERE lease_owner = ? AND status = 'running'",
            (time.time() + self.lease_s, owner),
        ).rowcount

    def release_job(self, job_id: int, owner: str) -> None:
        """Give up `owner`'s lease on the job (its status is the caller's to set, before or after)."""
        self._write(
            "UPDATE jobs SET lease_owner = NULL, lease_expires = NULL WHERE id = ? AND lease_owner = ?",
            (job_id, owner),
        )

    def recover_interrupted(self) -> list[int]:
        """Jobs left 'running' by a process that is gone (lease lapsed, or its process on this host has
        exited) go back to 'queued'; jobs a live process holds are left alone. Returns the ids re-queued."""
        now = time.time()
        if self.read_only:
            return []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    "SELECT id, lease_owner, lease_expires FROM jobs WHERE status = 'running'"
                ).fetchall()
                ids = [r["id"] for r in rows if _lease_lapsed(r["lease_owner"], r["lease_expires"], now)]
                for job_id in ids:
                    self._db.execute(
                        "UPDATE jobs SET status = 'queued', started = NULL, lease_owner = NULL, lease_expires = NULL "
                        "WHERE id = ?",
                        (job_id,),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return ids

    # transcripts
    # transcripts: a write the disk refuses stays in memory (and readable here) until it can be saved
    def save_transcript(self, job_id: int, transcript: Transcript) -> None:
        """The engine's result: becomes the original, and clears any edit."""
        original = json.dumps(transcript.to_dict())
        with self._lock:
            if not self._write_or_keep(
                "INSERT INTO transcripts (job_id, original, edited, updated) VALUES (?, ?, NULL, ?) "
                "ON CONFLICT(job_id) DO UPDATE SET original = excluded.original, edited = NULL, updated = excluded.updated",
                (job_id, original, time.time()),
            ):
                self._kept_transcripts[job_id] = {"original": original, "edited": None}

    def save_edit(self, job_id: int, transcript: Transcript) -> None:
        edited = json.dumps(transcript.to_dict())
        with self._lock:
            if not self._write_or_keep("UPDATE transcripts SET edited = ?, updated = ? WHERE job_id = ?",
                                       (edited, time.time(), job_id)):
                self._kept_transcripts.setdefault(job_id, {})["edited"] = edited

    def revert_edit(self, job_id: int) -> None:
        with self._lock:
            if not self._write_or_keep("UPDATE transcripts SET edited = NULL, updated = ? WHERE job_id = ?",
                                       (time.time(), job_id)):
                self._kept_transcripts.setdefault(job_id, {})["edited"] = None

    def _transcript_texts(self, job_id: int) -> tuple[str | None, str | None]:
        """(original, edited) JSON as saved, or as kept in memory while the disk refuses them."""
        with self._lock:
            rows = list(self._rows("SELECT original, edited FROM transcripts WHERE job_id = ?", (job_id,)))
            original, edited = (rows[0]["original"], rows[0]["edited"]) if rows else (None, None)
            kept = self._kept_transcripts.get(job_id, {})
        return kept.get("original", original), kept["edited"] if "edited" in kept else edited

    def transcript(self, job_id: int) -> Transcript | None:
        """The edited transcript if there is one, else the original."""
        original, edited = self._transcript_texts(job_id)
        text = edited or original
        return Transcript.from_dict(json.loads(text)) if text else None

    def original_transcript(self, job_id: int) -> Transcript | None:
        original, _ = self._transcript_texts(job_id)
        return Transcript.from_dict(json.loads(original)) if original else None

    def is_edited(self, job_id: int) -> bool:
        original, edited = self._transcript_texts(job_id)
        return original is not None and edited is not None

    # remote calls of a job (detached Modal jobs)
    def chunk_ledger(self, job_id: int) -> "LibraryChunkLedger":
        """Where job `job_id`'s Modal calls are written down as they are sent (see ChunkLedger)."""
        return LibraryChunkLedger(self, job_id)

    # search index (segment_texts, segments_fts): saved transcripts are indexed by triggers
    def append_segments(self, job_id: int, segments: Iterable[Segment]) -> None:
        """Index segments as they stream in, after the job's last indexed one. A job with a saved transcript
        keeps that transcript's index until the new one is saved; a batch that starts before the last indexed
        segment means the job started over (retry, recovery), so its partial index is replaced. The index is
        a convenience: a write the disk refuses is skipped, never a job's failure (saving re-indexes it)."""
        segments = list(segments)
        if not segments or self.read_only:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                job_known = self._db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone()
                saved = self._db.execute("SELECT 1 FROM transcripts WHERE job_id = ?", (job_id,)).fetchone()
                if job_known and not saved:
                    last = self._db.execute(
                        "SELECT segment, start FROM segment_texts WHERE job_id = ? ORDER BY segment DESC LIMIT 1",
                        (job_id,),
                    ).fetchone()
                    first_index = 0
                    if last is not None and segments[0].start <= last["start"]:
                        self._db.execute("DELETE FROM segment_texts WHERE job_id = ?", (job_id,))
                    elif last is not None:
                        first_index = last["segment"] + 1
                    self._db.executemany(
                        "INSERT INTO segment_texts (job_id, segment, start, text) VALUES (?, ?, ?, ?)",
                        [(job_id, first_index + n, s.start, s.text) for n, s in enumerate(segments)],
                    )
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def search_segments(self, match: str, limit: int, marks: tuple[str, str], ellipsis: str,
                        snippet_tokens: int) -> list[sqlite3.Row]:
        """Segments matching an FTS5 expression (worker.library.search builds it), best first: job_id, path, segment,
        start, text, snippet (the matches between `marks`). Only jobs with a transcript, or running now."""
        return list(self._rows(
            "SELECT st.job_id, j.path, st.segment, st.start, st.text, "
            "snippet(segments_fts, 0, ?, ?, ?, ?) AS snippet "
            "FROM segments_fts JOIN segment_texts AS st ON st.id = segments_fts.rowid "
            "JOIN jobs AS j ON j.id = st.job_id "
            "WHERE segments_fts MATCH ? "
            "AND (j.status = 'running' OR EXISTS (SELECT 1 FROM transcripts AS t WHERE t.job_id = st.job_id)) "
            "ORDER BY rank, st.job_id, st.segment LIMIT ?",
            (marks[0], marks[1], ellipsis, snippet_tokens, match, limit),
        ))

    # watch folders (worker.jobs.watch)
    def watched_file(self, path: str | Path) -> sqlite3.Row | None:
        """The watched_files row of `path` (path, size, mtime, job_id, state, updated), or None."""
        rows = list(self._rows("SELECT * FROM watched_files WHERE path = ?", (str(path),)))
        return rows[0] if rows else None

    def watched_files(self, state: str | None = None) -> list[sqlite3.Row]:
        """Every watched file, or those in `state`, by path."""
        if state is None:
            return list(self._rows("SELECT * FROM watched_files ORDER BY path"))
        return list(self._rows("SELECT * FROM watched_files WHERE state = ? ORDER BY path", (str(state),)))

    def claim_watched_file(self, path: str | Path, size: int, mtime: float, state: str, stale_s: float) -> bool:
        """Atomically note that this process takes `path` as it is now (size, mtime) in `state`, unless it is
        already noted so (another watcher on this library took it first); a claim older than `stale_s` that
        was never followed up (its process stopped) can be taken again. True when taken."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT size, mtime, state, updated FROM watched_files WHERE path = ?",
                                       (str(path),)).fetchone()
                taken = row is not None and (row["size"], row["mtime"]) == (size, mtime) and not (
                    row["state"] == str(state) and row["updated"] < now - stale_s)
                if not taken:
                    self._db.execute(
                        "INSERT INTO watched_files (path, size, mtime, job_id, state, updated) "
                        "VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT(path) DO UPDATE SET size = excluded.size, "
                        "mtime = excluded.mtime, job_id = NULL, state = excluded.state, updated = excluded.updated",
                        (str(path), size, mtime, str(state), now),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            return not taken

    def set_watched_file(self, path: str | Path, size: int, mtime: float, job_id: int | None, state: str) -> None:
        self._write(
            "INSERT INTO watched_files (path, size, mtime, job_id, state, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime, job_id = excluded.job_id, "
            "state = excluded.state, updated = excluded.updated",
            (str(path), size, mtime, job_id, str(state), time.time()),
        )

    # known voices
    def save_voice(self, name: str, embedding: Iterable[float]) -> int:
        """Save a speaker's voice embedding under `name` (trimmed, not empty). Saving a name again (in any
        case) refines that voice: the average of everything saved under it. Returns the voice's id."""
        import numpy as np

        name = name.strip()
        if not name:
            raise ValueError("a known voice needs a name")
        vector = np.asarray(list(embedding), dtype=np.float32)
        if vector.ndim != 1 or not vector.size or not np.all(np.isfinite(vector)) or not np.any(vector):
            raise ValueError("not a voice embedding")
        vector /= np.linalg.norm(vector)
        with self._lock:
            row = next(self._rows("SELECT * FROM known_voices WHERE name = ? COLLATE NOCASE ORDER BY id", (name,)), None)
            if row is None:
                cursor = self._write(
                    "INSERT INTO known_voices (name, embedding, count, created) VALUES (?, ?, 1, ?)",
                    (name, vector.tobytes(), time.time()),
                )
                return _row_id(cursor)
            old = np.frombuffer(row["embedding"], dtype=np.float32)
            if old.shape != vector.shape:
                raise ValueError(f"the voice {row['name']!r} was saved by another speaker model")
            merged = old * row["count"] + vector
            merged /= np.linalg.norm(merged)
            self._write("UPDATE known_voices SET embedding = ?, count = count + 1 WHERE id = ?", (merged.tobytes(), row["id"]))
            return int(row["id"])

    def voices(self) -> list[KnownVoice]:
        """Every known voice, by name."""
        import numpy as np

        return [
            KnownVoice(r["id"], r["name"], tuple(float(x) for x in np.frombuffer(r["embedding"], dtype=np.float32)),
                       r["count"], r["created"])
            for r in self._rows("SELECT * FROM known_voices ORDER BY name COLLATE NOCASE, id")
        ]

    def delete_voice(self, voice_id: int) -> None:
        """Forget a known voice (transcripts keep the names they were given)."""
        self._write("DELETE FROM known_voices WHERE id = ?", (voice_id,))

    # timing log
    def add_log_line(self, job_id: int | None, line: str) -> None:
        self._write_or_keep("INSERT INTO log (job_id, line, created) VALUES (?, ?, ?)", (job_id, line, time.time()))

    def log_lines(self, job_id: int | None = None) -> list[str]:
        if job_id is None:
            return [r["line"] for r in self._rows("SELECT line FROM log ORDER BY id")]
        return [r["line"] for r in self._rows("SELECT line FROM log WHERE job_id = ? ORDER BY id", (job_id,))]


class LibraryChunkLedger:
    """worker.backends.base.ChunkLedger for one job, in the modal_calls table (each write commits at once)."""

    def __init__(self, library: Library, job_id: int) -> None:
        self._library = library
        self.job_id = job_id

    def sent(self, index: int, start_s: float, end_s: float, call_id: str) -> None:
        self._library._write(
            "INSERT OR REPLACE INTO modal_calls (job_id, chunk_index, start_s, end_s, call_id, finished, sent) "
            "VALUES (?, ?, ?, ?, ?, 0, ?)",
            (self.job_id, index, start_s, end_s, call_id, time.time()),
        )

    def finished(self, index: int) -> None:
        self._library._write(
            "UPDATE modal_calls SET finished = 1 WHERE job_id = ? AND chunk_index = ?", (self.job_id, index)
        )

    def forget(self, index: int) -> None:
        self._library._write("DELETE FROM modal_calls WHERE job_id = ? AND chunk_index = ?", (self.job_id, index))

    def entries(self) -> list[SentChunk]:
        rows = self._library._rows(
            "SELECT chunk_index, start_s, end_s, call_id, finished FROM modal_calls WHERE job_id = ? "
            "ORDER BY chunk_index",
            (self.job_id,),
        )
        return [SentChunk(r["chunk_index"], r["start_s"], r["end_s"], r["call_id"], bool(r["finished"])) for r in rows]

    def clear(self) -> None:
        self._library._write("DELETE FROM modal_calls WHERE job_id = ?", (self.job_id,))


def lease_owner() -> str:
    """A new owner name for this process's leases: host:pid:uuid."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


def _lease_lapsed(owner: str | None, expires: float | None, now: float) -> bool:
    """True when nobody can still be running under this lease: none, expired, or its process here is gone."""
    if owner is None or expires is None or expires < now:
        return True
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return False  # another host's process: only its lease tells
    return not _process_alive(int(parts[1]))


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return True  # no cheap, safe check: wait for the lease to lapse
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, another user's
    try:  # a zombie (exited, not yet reaped) runs nothing
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


# SQLite's primary result codes for a disk that refuses writes: READONLY, IOERR, FULL, CANTOPEN
_STORAGE_REASONS = {8: "it is read-only", 10: "a disk error", 13: "the disk is full", 14: "the file can't be opened"}


def _newer_notice(version: int) -> str:
    return (f"This library was written by a newer Whisper Desk (schema {version}; this version "
            f"knows {SCHEMA_VERSION}): it is open read-only, and nothing is saved.")


def _is_storage_error(error: sqlite3.Error) -> bool:
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _STORAGE_REASONS


def _storage_reason(error: sqlite3.Error) -> str:
    return _STORAGE_REASONS.get(getattr(error, "sqlite_errorcode", 0) & 0xFF) or exception_line(error)


def _row_id(cursor: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT just made."""
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _statements(script: str) -> list[str]:
    """A migration script split into complete SQL statements (sqlite3.complete_statement keeps trigger bodies whole)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def _job_from_row(row: sqlite3.Row | dict[str, Any]) -> JobRecord:
    return JobRecord(
        id=row["id"],
        path=row["path"],
        backend=row["backend"],
        options=TranscriptionOptions.from_dict(json.loads(row["options"])),
        status=JobStatus(row["status"]),
        error=row["error"],
        error_detail=row["error_detail"],
        duration=row["duration"],
        position=row["position"],
        created=row["created"],
        started=row["started"],
        finished=row["finished"],
        elapsed=row["elapsed"],
    )

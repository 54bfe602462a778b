"""Jobs in the library: their records, their order, their status changes, and the leases that let one process
run a job however many share the library."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from worker.core.options import TranscriptionOptions
from worker.library.database import Database, Row, is_storage_error, row_id
from worker.library.job_status import JobStatus

# A running job belongs to the process holding its lease; the holder renews it every HEARTBEAT_S, and a
# lease not renewed for LEASE_S (or whose process on this host is gone) lets another process recover the job.
LEASE_S = 30.0
HEARTBEAT_S = LEASE_S / 3
IDS_PER_QUERY = 500  # SQLite allows at least 999 parameters in one statement

ColumnValue = str | float | None


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
    content_sha256: str | None = None  # SHA-256 of the file's bytes, once known (worker.jobs.same_recording)
    transcribe_again: bool = False  # transcribed even when a finished job had the same recording
    owned_copy: bool = False  # the file is the app's own copy (an API upload), removed with the job

    @property
    def name(self) -> str:
        return Path(self.path).name


def new_lease_owner() -> str:
    """A new owner name for this process's leases: host:pid:random (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"


class JobStore:
    """The jobs table. A status change the disk refuses is kept in memory and shown by reads until it is saved."""

    def __init__(self, database: Database, lease_s: float = LEASE_S) -> None:
        self._db = database
        self.lease_s = lease_s
        self._kept: dict[int, dict[str, ColumnValue]] = {}  # job id -> columns changed but not yet on disk
        database.when_all_saved(self._kept.clear)

    # --- reading ------------------------------------------------------------------------------------------

    def get(self, job_id: int) -> JobRecord | None:
        row = self._db.row("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return self._record(row) if row is not None else None

    def all(self) -> list[JobRecord]:
        """Every job, in queue order."""
        return [self._record(row) for row in self._db.rows("SELECT * FROM jobs ORDER BY position, id")]

    def added_after(self, job_id: int) -> list[JobRecord]:
        """The jobs added after `job_id` (ids only grow), by id: a cheap look for jobs other processes added."""
        return [self._record(row) for row in self._db.rows("SELECT * FROM jobs WHERE id > ? ORDER BY id", (job_id,))]

    def get_many(self, job_ids: list[int]) -> list[JobRecord]:
        """The jobs of these ids that exist, by id (one query per IDS_PER_QUERY)."""
        records: list[JobRecord] = []
        for start in range(0, len(job_ids), IDS_PER_QUERY):
            some = job_ids[start:start + IDS_PER_QUERY]
            rows = self._db.rows(f"SELECT * FROM jobs WHERE id IN ({', '.join('?' * len(some))}) ORDER BY id", tuple(some))
            records += [self._record(row) for row in rows]
        return records

    def _record(self, row: Row) -> JobRecord:
        """The job as stored, with any change still kept in memory applied."""
        values = {**dict(row), **self._kept.get(row["id"], {})}
        return JobRecord(
            id=values["id"], path=values["path"], backend=values["backend"],
            options=TranscriptionOptions.from_dict(json.loads(values["options"])),
            status=JobStatus(values["status"]), error=values["error"], error_detail=values["error_detail"],
            duration=values["duration"], position=values["position"], created=values["created"],
            started=values["started"], finished=values["finished"], elapsed=values["elapsed"],
            content_sha256=values["content_sha256"], transcribe_again=bool(values["transcribe_again"]),
            owned_copy=bool(values["owned_copy"]),
        )

    # --- adding, removing, ordering -----------------------------------------------------------------------

    def add(self, path: str | Path, options: TranscriptionOptions, backend: str,
            transcribe_again: bool = False, owned_copy: bool = False) -> JobRecord:
        [job] = self.add_many([path], options, backend, transcribe_again, owned_copy)
        return job

    def add_many(self, paths: Iterable[str | Path], options: TranscriptionOptions, backend: str,
                 transcribe_again: bool = False, owned_copy: bool = False) -> list[JobRecord]:
        """Queue many files at the end, in the given order, in one transaction (thousands stay fast).
        `transcribe_again`: transcribed even if a finished job had the same recording. `owned_copy`: the files
        are the app's own copies, removed with their jobs."""
        now = time.time()
        options_json = json.dumps(options.to_dict())
        with self._db.transaction() as db:
            (max_position,) = db.execute("SELECT COALESCE(MAX(position), 0) FROM jobs").fetchone()
            ids = [
                row_id(db.execute(
                    "INSERT INTO jobs (path, backend, options, position, created, transcribe_again, owned_copy) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (str(path), backend, options_json, max_position + offset, now, int(transcribe_again), int(owned_copy)),
                ))
                for offset, path in enumerate(paths, start=1)
            ]
        if not ids:
            return []
        rows = self._db.rows("SELECT * FROM jobs WHERE id BETWEEN ? AND ?", (min(ids), max(ids)))
        by_id = {row["id"]: self._record(row) for row in rows}
        return [by_id[job_id] for job_id in ids]

    def remove(self, job_id: int) -> None:
        self._db.write("DELETE FROM jobs WHERE id = ?", (job_id,))

    def move(self, job_id: int, before_job_id: int | None) -> None:
        """Put `job_id` just before `before_job_id` (None: at the end)."""
        order = [job.id for job in self.all() if job.id != job_id]
        index = order.index(before_job_id) if before_job_id in order else len(order)
        order.insert(index, job_id)
        with self._db.transaction() as db:
            db.executemany("UPDATE jobs SET position = ? WHERE id = ?", list(enumerate(order, start=1)))

    # --- status changes -----------------------------------------------------------------------------------

    def set_duration(self, job_id: int, seconds: float) -> None:
        self._update(job_id, {"duration": seconds})

    def set_backend(self, job_id: int, backend: str) -> None:
        self._update(job_id, {"backend": backend})

    def set_options(self, job_id: int, options: TranscriptionOptions) -> None:
        self._update(job_id, {"options": json.dumps(options.to_dict())})

    def set_content(self, job_id: int, content_sha256: str) -> None:
        """The SHA-256 of the job's file, as it was read."""
        self._update(job_id, {"content_sha256": content_sha256})

    def mark_started(self, job_id: int, started: float) -> None:
        """A run begins: what an earlier run left (error, end, elapsed time) is cleared."""
        self._update(job_id, {"started": started, "error": None, "error_detail": None, "finished": None, "elapsed": None})

    def mark_ended(self, job_id: int, status: JobStatus, finished: float, elapsed: float | None = None,
                   error: str | None = None, error_detail: str | None = None, duration: float | None = None) -> None:
        """A run (or a queued job) ends as done, failed or cancelled; `duration` is set when given."""
        if not status.finished:
            raise ValueError(f"{status.value!r} is not an end")
        change: dict[str, ColumnValue] = {"status": status.value, "finished": finished, "elapsed": elapsed,
                                          "error": error, "error_detail": error_detail}
        if duration is not None:
            change["duration"] = duration
        self._update(job_id, change)

    def requeue(self, job_id: int, transcribe_again: bool = False) -> None:
        """Back in the queue as if new (a run put back when the app closes). `transcribe_again` (retry): really
        transcribed, even if a finished job had the same recording; its file is read (hashed) again first."""
        change: dict[str, ColumnValue] = {"status": JobStatus.QUEUED.value, "error": None, "error_detail": None,
                                          "started": None, "finished": None, "elapsed": None}
        if transcribe_again:
            change.update(content_sha256=None, transcribe_again=1)
        self._update(job_id, change)

    def _update(self, job_id: int, change: dict[str, ColumnValue]) -> None:
        assignments = ", ".join(f"{column} = ?" for column in change)
        with self._db.lock:
            if not self._db.write_or_keep(f"UPDATE jobs SET {assignments} WHERE id = ?", (*change.values(), job_id)):
                self._kept.setdefault(job_id, {}).update(change)

    # --- leases: one process runs a job, however many share the library -----------------------------------

    def claim(self, job_id: int, owner: str, transcribing: bool = True) -> bool:
        """Atomically move a queued job to 'running' under `owner`'s lease. False when the job is not
        queued, or another live owner holds it (a job whose lease lapsed, or whose owner died, can be taken),
        or the disk refuses the claim (then `problem` says so: nothing runs that the library cannot record).
        Also False when another owner's job of the same recording and options is running under a live lease,
        or is done, unless the job is to be transcribed again: two processes that start copies of one
        recording at the same moment transcribe it once, and the other takes its transcript. (`transcribing`
        False: the job is claimed to take a finished twin's transcript.)"""
        now = time.time()
        if self._db.read_only:
            return False  # a newer version's library runs nothing here
        try:
            with self._db.transaction() as db:
                row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
                free = row is not None and (
                    row["status"] == JobStatus.QUEUED
                    or (row["status"] == JobStatus.RUNNING
                        and (row["lease_owner"] == owner or _lease_lapsed(row["lease_owner"], row["lease_expires"], now)))
                ) and not (transcribing and _twin_elsewhere(db, row, owner, now))
                if free:
                    db.execute(
                        "UPDATE jobs SET status = 'running', started = COALESCE(?, started), lease_owner = ?, "
                        "lease_expires = ? WHERE id = ?",
                        (now if row["status"] == JobStatus.QUEUED else None, owner, now + self.lease_s, job_id),
                    )
        except sqlite3.OperationalError as error:
            if not is_storage_error(error):
                raise
            self._db.note_problem(error)
            return False
        return free

    def heartbeat(self, owner: str) -> int:
        """Renew every lease `owner` holds on a running job; returns how many."""
        if self._db.read_only:
            return 0
        return self._db.write(
            "UPDATE jobs SET lease_expires = ? WHERE lease_owner = ? AND status = 'running'",
            (time.time() + self.lease_s, owner),
        ).rowcount

    def release(self, job_id: int, owner: str) -> None:
        """Give up `owner`'s lease on the job (its status is the caller's to set, before or after)."""
        self._db.write("UPDATE jobs SET lease_owner = NULL, lease_expires = NULL WHERE id = ? AND lease_owner = ?",
                       (job_id, owner))

    def recover_interrupted(self) -> list[int]:
        """Jobs left 'running' by a process that is gone (lease lapsed, or its process on this host has
        exited) go back to 'queued'; jobs a live process holds are left alone. Returns the ids re-queued."""
        now = time.time()
        if self._db.read_only:
            return []
        with self._db.transaction() as db:
            rows = db.execute("SELECT id, lease_owner, lease_expires FROM jobs WHERE status = 'running'").fetchall()
            ids = [row["id"] for row in rows if _lease_lapsed(row["lease_owner"], row["lease_expires"], now)]
            db.executemany("UPDATE jobs SET status = 'queued', started = NULL, lease_owner = NULL, lease_expires = NULL "
                           "WHERE id = ?", [(job_id,) for job_id in ids])
        return ids


def _twin_elsewhere(db: sqlite3.Connection, row: Row, owner: str, now: float) -> bool:
    """Whether another owner's job of the same recording and options is done, or running under a live lease."""
    if row["content_sha256"] is None or row["transcribe_again"]:
        return False
    twins = db.execute("SELECT status, lease_owner, lease_expires FROM jobs WHERE content_sha256 = ? AND options = ? "
                       "AND id != ? AND status IN ('done', 'running')", (row["content_sha256"], row["options"], row["id"]))
    return any(twin["status"] == JobStatus.DONE
               or (twin["lease_owner"] != owner and not _lease_lapsed(twin["lease_owner"], twin["lease_expires"], now))
               for twin in twins)


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

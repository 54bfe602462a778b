"""Watch-folder state in the library: each media file a watched folder has seen (as it was: size, time), what
became of it, and the job that transcribes it, across restarts and across watchers sharing the library; and for
each folder whose files already there were skipped, which addition of it that was."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from worker.library.database import Database, Row


@dataclass(frozen=True)
class WatchedFile:
    path: str
    size: int
    mtime: float
    job_id: int | None
    state: str  # a worker.jobs.watch_folders.WatchState value
    updated: float  # when this was noted (time.time())


class WatchedFileStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def get(self, path: str | Path) -> WatchedFile | None:
        row = self._db.row("SELECT * FROM watched_files WHERE path = ?", (str(path),))
        return _watched(row) if row is not None else None

    def all(self, state: str | None = None) -> list[WatchedFile]:
        """Every watched file, or those in `state`, by path."""
        if state is None:
            return [_watched(row) for row in self._db.rows("SELECT * FROM watched_files ORDER BY path")]
        return [_watched(row) for row in self._db.rows("SELECT * FROM watched_files WHERE state = ? ORDER BY path",
                                                       (str(state),))]

    def claim(self, path: str | Path, size: int, mtime: float, state: str, stale_s: float) -> bool:
        """Atomically note that this process takes `path` as it is now (size, mtime) in `state`, unless it is
        already noted so (another watcher on this library took it first); a claim older than `stale_s` that
        was never followed up (its process stopped) can be taken again. True when taken."""
        now = time.time()
        with self._db.transaction() as db:
            row = db.execute("SELECT size, mtime, state, updated FROM watched_files WHERE path = ?", (str(path),)).fetchone()
            taken = row is not None and (row["size"], row["mtime"]) == (size, mtime) and not (
                row["state"] == str(state) and row["updated"] < now - stale_s)
            if not taken:
                db.execute(
                    "INSERT INTO watched_files (path, size, mtime, job_id, state, updated) "
                    "VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT(path) DO UPDATE SET size = excluded.size, "
                    "mtime = excluded.mtime, job_id = NULL, state = excluded.state, updated = excluded.updated",
                    (str(path), size, mtime, str(state), now),
                )
        return not taken

    def set(self, path: str | Path, size: int, mtime: float, job_id: int | None, state: str) -> None:
        self._db.write(
            "INSERT INTO watched_files (path, size, mtime, job_id, state, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime = excluded.mtime, job_id = excluded.job_id, "
            "state = excluded.state, updated = excluded.updated",
            (str(path), size, mtime, job_id, str(state), time.time()),
        )


    def existing_skipped_for(self, folder: str | Path) -> float | None:
        """Which addition of `folder` (WatchFolder.added) had its files already there skipped, or None."""
        row = self._db.row("SELECT existing_skipped_for FROM watched_folders WHERE folder = ?", (str(folder),))
        return float(row["existing_skipped_for"]) if row is not None else None

    def note_existing_skipped(self, folder: str | Path, added: float) -> None:
        self._db.write(
            "INSERT INTO watched_folders (folder, existing_skipped_for, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(folder) DO UPDATE SET existing_skipped_for = excluded.existing_skipped_for, "
            "updated = excluded.updated",
            (str(folder), added, time.time()),
        )


def _watched(row: Row) -> WatchedFile:
    return WatchedFile(row["path"], row["size"], row["mtime"], row["job_id"], row["state"], row["updated"])

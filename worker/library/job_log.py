"""The timing log in the library: one line per chunk and per job, kept with the job it belongs to."""

from __future__ import annotations

import time

from worker.library.database import Database


class JobLog:
    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, job_id: int | None, line: str) -> None:
        self._db.write_or_keep("INSERT INTO log (job_id, line, created) VALUES (?, ?, ?)", (job_id, line, time.time()))

    def lines(self, job_id: int | None = None) -> list[str]:
        """Every line, or one job's, in the order they were written."""
        if job_id is None:
            return [row["line"] for row in self._db.rows("SELECT line FROM log ORDER BY id")]
        return [row["line"] for row in self._db.rows("SELECT line FROM log WHERE job_id = ? ORDER BY id", (job_id,))]

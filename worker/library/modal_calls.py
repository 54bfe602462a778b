"""The Modal calls each chunk of a job runs as, written down as they are sent (worker.backends.base.ChunkLedger),
so a job restarted after a crash or a close collects them instead of paying again."""

from __future__ import annotations

import time

from worker.backends.base import SentChunk
from worker.library.database import Database


class LibraryChunkLedger:
    """worker.backends.base.ChunkLedger for one job, in the modal_calls table (each write commits at once)."""

    def __init__(self, database: Database, job_id: int) -> None:
        self._db = database
        self.job_id = job_id

    def sent(self, index: int, start_s: float, end_s: float, call_id: str) -> None:
        self._db.write(
            "INSERT OR REPLACE INTO modal_calls (job_id, chunk_index, start_s, end_s, call_id, finished, sent) "
            "VALUES (?, ?, ?, ?, ?, 0, ?)",
            (self.job_id, index, start_s, end_s, call_id, time.time()),
        )

    def finished(self, index: int) -> None:
        self._db.write("UPDATE modal_calls SET finished = 1 WHERE job_id = ? AND chunk_index = ?", (self.job_id, index))

    def forget(self, index: int) -> None:
        self._db.write("DELETE FROM modal_calls WHERE job_id = ? AND chunk_index = ?", (self.job_id, index))

    def entries(self) -> list[SentChunk]:
        rows = self._db.rows("SELECT chunk_index, start_s, end_s, call_id, finished FROM modal_calls WHERE job_id = ? "
                             "ORDER BY chunk_index", (self.job_id,))
        return [SentChunk(r["chunk_index"], r["start_s"], r["end_s"], r["call_id"], bool(r["finished"])) for r in rows]

    def clear(self) -> None:
        self._db.write("DELETE FROM modal_calls WHERE job_id = ?", (self.job_id,))

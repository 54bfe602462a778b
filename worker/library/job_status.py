"""A job's status (re-exported by worker.jobs.queue, which moves jobs between them; the library stores the value)."""

from __future__ import annotations

from enum import Enum


class JobStatus(str, Enum):
    """queued → running → done | failed | cancelled (retry puts a finished job back in the queue)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATUSES


FINISHED_STATUSES = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})

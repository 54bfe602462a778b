"""The ledger of a job's Modal calls: written the moment a call exists, kept across a restart of the app."""

from __future__ import annotations

from pathlib import Path

from worker.backends.base import MemoryLedger, SentChunk
from worker.library import Library
from worker.options import TranscriptionOptions


def test_library_ledger_survives_reopening_and_is_per_job(tmp_path: Path) -> None:
    path = tmp_path / "lib.sqlite3"
    library = Library(path)
    job = library.add_job("/audio/long.m4a", TranscriptionOptions(), "modal")
    other = library.add_job("/audio/other.m4a", TranscriptionOptions(), "modal")
    ledger = library.chunk_ledger(job.id)
    ledger.sent(0, 0.0, 30.2, "fc-first")
    ledger.sent(1, 30.2, 59.8, "fc-second")
    ledger.finished(0)
    library.chunk_ledger(other.id).sent(0, 0.0, 12.0, "fc-other")
    library.close()

    reopened = Library(path)
    assert reopened.chunk_ledger(job.id).entries() == [
        SentChunk(0, 0.0, 30.2, "fc-first", True),
        SentChunk(1, 30.2, 59.8, "fc-second", False),
    ]
    ledger = reopened.chunk_ledger(job.id)
    ledger.sent(1, 30.2, 59.8, "fc-second-again")  # a re-spawn replaces the chunk's call
    ledger.forget(0)
    assert [(e.index, e.call_id, e.finished) for e in ledger.entries()] == [(1, "fc-second-again", False)]
    ledger.clear()
    assert ledger.entries() == []
    assert [e.call_id for e in reopened.chunk_ledger(other.id).entries()] == ["fc-other"]
    reopened.remove_job(other.id)  # removing a job drops its calls
    assert reopened.chunk_ledger(other.id).entries() == []


def test_memory_ledger_answers_like_the_library_one() -> None:
    ledger = MemoryLedger()
    ledger.sent(2, 60.0, 90.0, "fc-c")
    ledger.sent(0, 0.0, 30.0, "fc-a")
    ledger.finished(2)
    assert ledger.entries() == [SentChunk(0, 0.0, 30.0, "fc-a"), SentChunk(2, 60.0, 90.0, "fc-c", True)]
    ledger.clear()
    assert ledger.entries() == []

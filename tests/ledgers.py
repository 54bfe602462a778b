"""Test-only chunk ledgers: the ChunkLedger protocol kept in memory."""

from __future__ import annotations

from worker.backends.base import SentChunk


class MemoryLedger:
    """A ChunkLedger that lives as long as the object (jobs run without a library; unit tests)."""

    def __init__(self) -> None:
        self._rows: dict[int, SentChunk] = {}

    def sent(self, index: int, start_s: float, end_s: float, call_id: str) -> None:
        self._rows[index] = SentChunk(index, start_s, end_s, call_id)

    def finished(self, index: int) -> None:
        row = self._rows.get(index)
        if row is not None:
            self._rows[index] = SentChunk(row.index, row.start_s, row.end_s, row.call_id, True)

    def forget(self, index: int) -> None:
        self._rows.pop(index, None)

    def entries(self) -> list[SentChunk]:
        return [self._rows[index] for index in sorted(self._rows)]

    def clear(self) -> None:
        self._rows.clear()


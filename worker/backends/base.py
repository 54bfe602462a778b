"""The one interface behind which local and Modal transcription sit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from worker.events import CancelToken, Emit
from worker.options import TranscriptionOptions
from worker.transcript import Transcript

BACKEND_LABELS = {"local": "This computer", "modal": "Modal T4"}


@dataclass(frozen=True)
class SentChunk:
    """One chunk of a job handed to a remote worker: where it lies in the file and the call that runs it."""

    index: int
    start_s: float
    end_s: float
    call_id: str
    finished: bool = False


class ChunkLedger(Protocol):
    """Where a job's remote calls are written down the moment they exist, so that a job interrupted by a
    crash or kill collects them on its next run instead of paying for them again (the library keeps one
    per job: Library.chunk_ledger(job_id))."""

    def sent(self, index: int, start_s: float, end_s: float, call_id: str) -> None:
        """Chunk `index` runs as call `call_id` (replaces an older call for the same chunk)."""
        ...

    def finished(self, index: int) -> None:
        """Chunk `index`'s answer is in (its call's result stays collectable for days)."""
        ...

    def forget(self, index: int) -> None:
        """Chunk `index` has no call worth collecting any more (cancelled, or its result expired)."""
        ...

    def entries(self) -> list[SentChunk]:
        """Every recorded chunk, by index."""
        ...

    def clear(self) -> None:
        """The job is over: nothing left to collect."""
        ...


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


class Backend(Protocol):
    name: str  # "local" or "modal"

    def transcribe(
        self,
        path: Path,
        options: TranscriptionOptions,
        emit: Emit,
        cancel: CancelToken,
        ledger: ChunkLedger | None = None,
    ) -> Transcript:
        """Transcribe one file. Emits Progress/SegmentsReady/TimingReport as it goes.
        `ledger` records remote calls as they are sent (Modal; local ignores it) and is cleared on success.
        Raises MediaError (bad file), ModalSetupError, TranscriptionError, or Cancelled."""
        ...

    def close(self) -> None:
        """Release processes, clients and models."""
        ...


def create_backend(name: str, **settings: object) -> Backend:
    """The backend by name; heavy imports happen here, not at module import."""
    if name == "local":
        from worker.backends.local import LocalBackend

        return LocalBackend(**settings)  # type: ignore[arg-type]
    if name == "modal":
        from worker.backends.modal_fanout import ModalBackend

        return ModalBackend(**settings)  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {name!r}; choose local or modal")

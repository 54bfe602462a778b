"""The one interface behind which local and Modal transcription sit."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from worker.backends.events import Emit
from worker.core.cancel import CancelToken
from worker.core.options import TranscriptionOptions
from worker.transcripts.model import Transcript

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



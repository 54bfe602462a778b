"""Events a backend emits while it works. The GUI turns them into Qt signals; the CLI prints them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Union

from worker.errors import Cancelled
from worker.transcript import Segment


class Stage(str, Enum):
    QUEUED = "queued"
    DECODING = "decoding"
    LOADING_MODEL = "loading model"
    UPLOADING = "uploading"
    WAITING_GPU = "waiting for a GPU"
    TRANSCRIBING = "transcribing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Progress:
    stage: Stage
    fraction: float = 0.0  # 0..1 of the whole job
    chunk_index: int | None = None  # 0-based
    chunk_count: int | None = None
    message: str = ""

    def label(self) -> str:
        if self.stage is Stage.TRANSCRIBING and self.chunk_count and self.chunk_count > 1 and self.chunk_index is not None:
            return f"transcribing chunk {self.chunk_index + 1} of {self.chunk_count}"
        return self.message or self.stage.value


@dataclass(frozen=True)
class SegmentsReady:
    """New segments, in absolute time, in the order they belong."""

    segments: list[Segment]
    chunk_index: int | None = None


@dataclass(frozen=True)
class TimingReport:
    """One line of the GPU/CPU timing log: a chunk's timings dict (gpu, cold_start, model_load_s,
    inference_s, audio_s, rtf, ...). chunk_index None means a whole-job summary."""

    timings: dict[str, Any] = field(default_factory=dict)
    chunk_index: int | None = None


@dataclass(frozen=True)
class JobNote:
    """A line for the job's log: something the user should know that is not an error."""

    text: str


Event = Union[Progress, SegmentsReady, TimingReport, JobNote]
Emit = Callable[[Event], None]


def ignore_events(_event: Event) -> None:
    pass


class CancelToken:
    """Shared by the caller and a backend; cancel() and detach() may be called from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._detached = False

    def cancel(self) -> None:
        """Stop the job and everything it pays for (a Modal job cancels its calls)."""
        self._stop(detach=False)

    def detach(self) -> None:
        """Stop only the local side (the app closes; the job runs again at the next start): a Modal job leaves
        its calls running and written down, to be collected then. For local work it is the same as cancel()."""
        self._stop(detach=True)

    def _stop(self, detach: bool) -> None:
        with self._lock:
            if self._event.is_set():
                return  # the first of cancel() and detach() decides
            self._detached = detach
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    @property
    def cancelled(self) -> bool:
        """True after cancel() or detach()."""
        return self._event.is_set()

    @property
    def detached(self) -> bool:
        """True when it was stopped by detach(): remote work is to be left running."""
        return self._detached

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run `callback` when cancelled (at once if already cancelled)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)

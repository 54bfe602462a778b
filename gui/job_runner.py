"""The window's bridge to the job queue (worker.jobs.queue.JobQueue): the queue reports from its worker threads, and
each report travels as ONE queued Qt signal to the GUI thread (reports made on the GUI thread are delivered at
once, after the queued ones), where it is handed out as the signals the
window and its models connect to. Every rule (scheduling, statuses, progress, ETA, the cost summary) lives in
worker.jobs.queue; nothing here blocks the GUI thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QThread, Signal

from worker.jobs.preferences import Preferences
from worker.jobs.queue import (
    BackendFactory,
    DurationKnown,
    JobAdded,
    JobChanged,
    JobFinished,
    JobProgress,
    JobQueue,
    JobRemoved,
    JobsReordered,
    JobStarted,
    LogLine,
    ModalSetupNeeded,
    Note,
    PathsAdded,
    PausedChanged,
    QueueEvent,
    SegmentsArrived,
    SerialWorker,
    default_backend_factory,
)
from worker.library.database import JobRecord, Library
from worker.transcripts.model import Transcript

__all__ = ["BackendFactory", "QueueController", "default_backend_factory"]


class QueueController(QObject):
    """The queue as Qt signals (delivered on the GUI thread, in the order things happened)."""

    jobAdded = Signal(object)  # JobRecord
    jobChanged = Signal(object)  # JobRecord
    jobRemoved = Signal(int)
    jobsReordered = Signal()
    jobStarted = Signal(int)
    progressed = Signal(int, float, str, object)  # job id, fraction, stage label, ETA seconds or None
    segmentsArrived = Signal(int, object)  # job id, list[Segment] (new ones)
    jobFinished = Signal(int, str)  # job id, JobStatus value: "done" | "failed" | "cancelled"
    logLine = Signal(object, str)  # job id or None, line
    note = Signal(str)  # something a user should read once (skipped files, recovered jobs)
    pathsAdded = Signal(list, list)  # after add_paths: the new JobRecords, the notes about skipped entries
    modalSetupNeeded = Signal(str)  # the reason
    durationKnown = Signal(int, float)
    pausedChanged = Signal(bool)

    _reported = Signal(object)  # a QueueEvent, from any thread (the one queued connection)

    def __init__(
        self,
        library: Library,
        preferences: Preferences,
        backend_factory: BackendFactory | None = None,
        modal_ready: Callable[[], bool] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.library = library
        self._closed = False  # after shutdown: late reports are dropped (the library may be closed)
        self._reported.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self.queue = JobQueue(library, preferences, self._report, backend_factory=backend_factory,
                              modal_ready=modal_ready, under_window=True)
        # each handler is given an event of its key's type (_deliver dispatches on type(event)), which a
        # dict's one value type cannot say: the handlers take Any, and each reads its own event's fields
        self._handlers: dict[type, Callable[[Any], None]] = {
            JobAdded: lambda e: self.jobAdded.emit(e.record),
            JobChanged: lambda e: self.jobChanged.emit(e.record),
            JobRemoved: lambda e: self.jobRemoved.emit(e.job_id),
            JobsReordered: lambda e: self.jobsReordered.emit(),
            JobStarted: lambda e: self.jobStarted.emit(e.job_id),
            JobProgress: lambda e: self.progressed.emit(e.job_id, e.fraction, e.label, e.eta_s),
            SegmentsArrived: lambda e: self.segmentsArrived.emit(e.job_id, e.segments),
            JobFinished: lambda e: self.jobFinished.emit(e.job_id, e.status.value),
            LogLine: lambda e: self.logLine.emit(e.job_id, e.text),
            Note: lambda e: self.note.emit(e.text),
            PathsAdded: lambda e: self.pathsAdded.emit(e.records, e.notes),
            ModalSetupNeeded: lambda e: self.modalSetupNeeded.emit(e.reason),
            DurationKnown: lambda e: self.durationKnown.emit(e.job_id, e.seconds),
            PausedChanged: lambda e: self.pausedChanged.emit(e.paused),
        }

    def _report(self, event: QueueEvent) -> None:
        """The queue's listener. From a worker thread: queued to the GUI thread. On the GUI thread (the window
        asked for something): what is already queued first, then this one at once, so the window sees the
        change as soon as its call returns and every report keeps its order."""
        if QThread.currentThread() == self.thread():
            QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)
            self._deliver(event)
        else:
            self._reported.emit(event)

    def _deliver(self, event: QueueEvent) -> None:
        if not self._closed:
            self._handlers[type(event)](event)

    # --- what the window reads ---------------------------------------------------------------------------

    @property
    def preferences(self) -> Preferences:
        return self.queue.preferences

    @property
    def paused(self) -> bool:
        return self.queue.paused

    @property
    def scanner(self) -> SerialWorker:
        return self.queue.scanner

    def running_ids(self) -> list[int]:
        return self.queue.running_ids()

    def is_running(self, job_id: int) -> bool:
        return self.queue.is_running(job_id)

    def partial_transcript(self, job_id: int) -> Transcript | None:
        return self.queue.partial_transcript(job_id)

    # --- what the window asks (each returns at once) -------------------------------------------------------

    def add_paths(self, paths: Iterable[str | Path]) -> None:
        self.queue.add_paths(paths)

    def add_files(self, files: Iterable[str | Path], backend: str | None = None) -> list[JobRecord]:
        return self.queue.add_files(files, backend)

    def restore(self) -> list[JobRecord]:
        return self.queue.restore()

    def start(self) -> None:
        self.queue.start()

    def warm_up(self) -> None:
        self.queue.warm_up()

    def set_paused(self, paused: bool) -> None:
        self.queue.set_paused(paused)

    def set_preferences(self, preferences: Preferences) -> None:
        self.queue.set_preferences(preferences)

    def schedule(self) -> None:
        self.queue.schedule()

    def cancel(self, job_ids: Iterable[int]) -> None:
        self.queue.cancel(job_ids)

    def retry(self, job_ids: Iterable[int]) -> None:
        self.queue.retry(job_ids)

    def remove(self, job_ids: Iterable[int]) -> None:
        self.queue.remove(job_ids)

    def set_backend(self, job_ids: Iterable[int], backend: str) -> None:
        self.queue.set_backend(job_ids, backend)

    def set_speakers(self, job_ids: Iterable[int], speakers: str | None) -> None:
        self.queue.set_speakers(job_ids, speakers)

    def move(self, job_ids: Iterable[int], delta: int) -> None:
        self.queue.move(job_ids, delta)

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop everything (running jobs go back to the queue), an explicit bounded wait; then deliver what
        was reported while waiting, and nothing after."""
        self.queue.shutdown(timeout_s)
        QCoreApplication.sendPostedEvents(self)
        self._closed = True

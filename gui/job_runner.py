"""The window's bridge to the job queue (worker.jobs.queue.JobQueue, the one job service): the queue reports from
its worker threads, and each report travels as ONE queued Qt signal to the GUI thread, where it is handed out as
the signals the window and its models connect to. Each signal carries the change itself (the record, the new
segments, the ending with its status and error, the edited transcript), so the window never reads the library
to learn what happened. A call the window makes returns after its reports were handed out (reports made on the
GUI thread are delivered at once, after the queued ones). Every rule (scheduling, statuses, progress, ETA, the
cost summary) lives in worker.jobs.queue; nothing here blocks the GUI thread on I/O."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt, QThread, Signal

from worker.jobs.events import RegionTranscribed, TranscriptEdited, TranscriptReused, VoiceSaved
from worker.jobs.preferences import Preferences
from worker.jobs.backend_pool import BackendFactory
from worker.jobs.events import (
    DurationKnown,
    FailureLine,
    JobAdded,
    JobChanged,
    JobFinished,
    JobProgress,
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
    SummaryLine,
    TimingLine,
)
from worker.jobs.queue import JobQueue, SerialWorker, default_backend_factory
from worker.library.jobs import JobRecord
from worker.library.library import Library
from worker.transcripts.model import Transcript

__all__ = ["BackendFactory", "QueueController", "default_backend_factory"]

DELIVERY_WAIT_S = 5.0  # the longest a window's call waits for reports another thread is handing out
Returned = TypeVar("Returned")


class QueueController(QObject):
    """The queue as Qt signals (delivered on the GUI thread, in the order things happened)."""

    jobAdded = Signal(object)  # JobRecord
    jobChanged = Signal(object)  # JobRecord
    jobRemoved = Signal(int)
    jobsReordered = Signal(object)  # tuple of every job id, in the new order
    jobStarted = Signal(int)
    progressed = Signal(int, float, str, object)  # job id, fraction, stage label, ETA seconds or None
    segmentsArrived = Signal(int, object)  # job id, list[Segment] (the new ones)
    jobFinished = Signal(object)  # JobFinished: id, status, error, the record as written, the transcript (done)
    logLine = Signal(object, str)  # job id or None, line (timing, summary and failure lines too)
    note = Signal(str)  # something a user should read once (skipped files, recovered jobs)
    pathsAdded = Signal(list, list)  # after add_paths: the new JobRecords, the notes about skipped entries
    modalSetupNeeded = Signal(str)  # the reason
    durationKnown = Signal(int, float)
    pausedChanged = Signal(bool)
    transcriptEdited = Signal(object)  # TranscriptEdited: job id, the transcript as saved, whether it is edited
    regionTranscribed = Signal(object)  # RegionTranscribed
    voiceSaved = Signal(object)  # VoiceSaved
    transcriptReused = Signal(object)  # TranscriptReused (after its line reached logLine)

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
        log_line: Callable[[LogLine], None] = lambda e: self.logLine.emit(e.job_id, e.text)  # noqa: E731
        # each handler is given an event of its key's type (_deliver dispatches on type(event)), which a
        # dict's one value type cannot say: the handlers take Any, and each reads its own event's fields
        self._handlers: dict[type, Callable[[Any], None]] = {
            JobAdded: lambda e: self.jobAdded.emit(e.record),
            JobChanged: lambda e: self.jobChanged.emit(e.record),
            JobRemoved: lambda e: self.jobRemoved.emit(e.job_id),
            JobsReordered: lambda e: self.jobsReordered.emit(e.order),
            JobStarted: lambda e: self.jobStarted.emit(e.job_id),
            JobProgress: lambda e: self.progressed.emit(e.job_id, e.fraction, e.label, e.eta_s),
            SegmentsArrived: lambda e: self.segmentsArrived.emit(e.job_id, e.segments),
            JobFinished: self.jobFinished.emit,
            LogLine: log_line,
            TimingLine: log_line,
            SummaryLine: log_line,
            FailureLine: log_line,
            TranscriptReused: self._reused,
            Note: lambda e: self.note.emit(e.text),
            PathsAdded: lambda e: self.pathsAdded.emit(e.records, e.notes),
            ModalSetupNeeded: lambda e: self.modalSetupNeeded.emit(e.reason),
            DurationKnown: lambda e: self.durationKnown.emit(e.job_id, e.seconds),
            PausedChanged: lambda e: self.pausedChanged.emit(e.paused),
            TranscriptEdited: self.transcriptEdited.emit,
            RegionTranscribed: self.regionTranscribed.emit,
            VoiceSaved: self.voiceSaved.emit,
        }

    def _reused(self, event: TranscriptReused) -> None:
        self.logLine.emit(event.job_id, event.text)
        self.transcriptReused.emit(event)

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

    def _settle(self) -> None:
        """After a call from the GUI thread: the reports it caused are handed out before it returns, also those
        another thread was delivering for it just then (they arrive as queued signals)."""
        if QThread.currentThread() == self.thread():
            self.queue.wait_delivered(DELIVERY_WAIT_S)
            QCoreApplication.sendPostedEvents(self, QEvent.Type.MetaCall)

    def _settled(self, returned: Returned) -> Returned:
        self._settle()
        return returned

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
        return self._settled(self.queue.add_files(files, backend))

    def add_review_job(self, transcript: Transcript, audio: str | Path, subtitles: str | Path) -> int:
        """Subtitles imported for review as a finished job (gui.export_dialog.ImportForReview calls this)."""
        return self._settled(self.queue.add_review_job(transcript, audio, subtitles)).id

    def restore(self) -> list[JobRecord]:
        return self._settled(self.queue.restore())

    def start(self) -> None:
        self.queue.start()
        self._settle()

    def warm_up(self) -> None:
        self.queue.warm_up()

    def set_paused(self, paused: bool) -> None:
        self.queue.set_paused(paused)
        self._settle()

    def set_preferences(self, preferences: Preferences) -> None:
        self.queue.set_preferences(preferences)
        self._settle()

    def schedule(self) -> None:
        self.queue.schedule()
        self._settle()

    def cancel(self, job_ids: Iterable[int]) -> None:
        self.queue.cancel(job_ids)
        self._settle()

    def retry(self, job_ids: Iterable[int]) -> None:
        self.queue.retry(job_ids)
        self._settle()

    def remove(self, job_ids: Iterable[int]) -> None:
        self.queue.remove(job_ids)
        self._settle()

    def set_backend(self, job_ids: Iterable[int], backend: str) -> None:
        self.queue.set_backend(job_ids, backend)
        self._settle()

    def set_speakers(self, job_ids: Iterable[int], speakers: str | None) -> None:
        self.queue.set_speakers(job_ids, speakers)
        self._settle()

    def move(self, job_ids: Iterable[int], delta: int) -> None:
        self.queue.move(job_ids, delta)
        self._settle()

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop everything (running jobs go back to the queue), an explicit bounded wait; then deliver what
        was reported while waiting, and nothing after."""
        self.queue.shutdown(timeout_s)
        self.queue.wait_delivered(DELIVERY_WAIT_S)
        QCoreApplication.sendPostedEvents(self)
        self._closed = True

"""The editor's saves, off the GUI thread: each change of a transcript is written through the job service
(worker.jobs.queue.JobQueue.save_edit, which writes the library and reports TranscriptEdited) by one
gui.background call at a time, so serialising an hour's transcript never stalls typing.

Order: writes run one after another; a job's newer state replaces its older one while that waits, so the last
state written is always the latest. `flush()` waits (bounded) until everything asked is written: the window
calls it before it closes the library."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from gui.background import Call
from worker.transcripts.model import Transcript

if TYPE_CHECKING:
    from worker.jobs.queue import JobQueue
    from worker.library.library import Library


def job_service(library: Library, owner: QObject) -> JobQueue:
    """The job service over `library` for an editor (`owner`) used outside the window, which gives its own
    queue: it runs no job; the editor's writes and region re-transcriptions go through it as through the
    window's, with the preferences read once. Its backends close when `owner` is destroyed."""
    from worker.jobs.preferences import Preferences
    from worker.jobs.queue import JobQueue

    jobs = JobQueue(library, Preferences.load(), only_own_jobs=True)
    owner.destroyed.connect(jobs.pool.close_all)
    return jobs


class EditSaver(QObject):
    failed = Signal(str)  # a write the library refused (one line)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._changed = threading.Condition()
        self._pending: dict[tuple[int, int], tuple[JobQueue, int, Transcript, bool]] = {}
        self._busy = False

    def save(self, jobs: JobQueue, job_id: int, transcript: Transcript, edited: bool = True) -> None:
        """Write `transcript` as the job's edit (`edited` False: it is the original again, the edit is dropped),
        soon and in order, through the job service `jobs`."""
        key = (id(jobs), job_id)
        with self._changed:
            self._pending.pop(key, None)  # an older state not yet written is never needed
            self._pending[key] = (jobs, job_id, transcript, edited)
            if self._busy:
                return
            self._busy = True
        Call(self._drain).start()

    def _drain(self) -> None:
        while True:
            with self._changed:
                if not self._pending:
                    self._busy = False
                    self._changed.notify_all()
                    return
                jobs, job_id, transcript, edited = self._pending.pop(next(iter(self._pending)))
            try:
                jobs.save_edit(job_id, transcript, edited)
            except Exception as exc:  # a closed library, a full disk: say so, and go on with the rest
                try:
                    self.failed.emit(f"The edit was not saved: {exc}")
                except RuntimeError:  # the editor is gone: nobody is left to tell
                    pass

    def pending(self) -> bool:
        with self._changed:
            return self._busy

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every save asked for is written; False if `timeout_s` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._busy, timeout_s)

"""Only a queue under the window lowers its jobs' priority: the CLI has no window to keep responsive and runs its
engine at full speed (stand-in backend that notes the nice value its worker thread runs at; Linux only, where
the value is per thread)."""

from __future__ import annotations

import os
import threading

from test_queue import Recorder, StandInBackend, media  # noqa: F401  (media: the fixture)

from worker.jobs.preferences import Preferences
from worker.jobs.queue import BACKGROUND_NICENESS, JobQueue
from worker.library.library import Library


class NiceRecordingBackend(StandInBackend):
    def __init__(self) -> None:
        super().__init__()
        self.nice: list[int] = []

    def transcribe(self, path, options, emit, cancel, ledger=None):
        self.nice.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        self.release(path)
        return super().transcribe(path, options, emit, cancel, ledger)


def _nice_of_a_job(media, library_path, **queue_options) -> int:  # noqa: F811
    backend, recorder = NiceRecordingBackend(), Recorder()
    library = Library(library_path)
    queue = JobQueue(library, Preferences(), recorder, backend_factory=lambda name, prefs: backend,
                     modal_ready=lambda: True, probe_delay_s=0.0, only_own_jobs=True, **queue_options)
    try:
        [record] = queue.add_files([media("a.wav")])
        recorder.wait_finished(record.id)
    finally:
        queue.shutdown(timeout_s=10)
        library.close()
    return backend.nice[0]


def test_the_cli_queue_runs_jobs_at_the_callers_priority_and_the_windows_queue_lower(media, tmp_path):  # noqa: F811
    callers = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert _nice_of_a_job(media, tmp_path / "cli.db") == callers  # as worker.cli and worker.jobs.watch make it
    assert _nice_of_a_job(media, tmp_path / "window.db", under_window=True) == max(callers, BACKGROUND_NICENESS)  # gui.job_runner

"""`whisper-desk watch`: one watched folder from the command line, until Ctrl-C."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TextIO

from worker.core.interrupts import CtrlC
from worker.jobs.watch import POLL_S, STOP_TIMEOUT_S, FolderWatcher, WatchService, WatchState
from worker.jobs.watch_folders import WatchFolder


def watch_command(entry: WatchFolder, library_path: Path | None, settle_s: float, err: TextIO,
                  poll_s: float = POLL_S) -> int:
    """`whisper-desk watch`: watch one folder until Ctrl-C (exit 130, running jobs resume at the next start)."""
    import signal

    from worker.cli.exit_codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
    from worker.jobs.preferences import Preferences
    from worker.jobs.events import JobStarted, LogLine, Note, QueueEvent
    from worker.jobs.queue import JobQueue
    from worker.library.database import default_library_path
    from worker.library.library import Library

    def say(line: str) -> None:
        print(line, file=err, flush=True)

    problem = entry.problem() or (None if Path(entry.folder).expanduser().is_dir() else "no such folder")
    if problem is not None:
        say(f"whisper-desk watch: {entry.folder}: {problem}")
        return EXIT_USAGE

    def on_queue_event(event: QueueEvent) -> None:  # what the report carries: nothing is read back
        if isinstance(event, JobStarted):
            say(f"{event.record.name if event.record else event.job_id}: transcribing")
        elif isinstance(event, (LogLine, Note)):
            say(event.text)

    preferences = replace(Preferences.load(), auto_export_formats=())  # the watcher writes this folder's outputs
    library = Library(library_path or default_library_path())
    queue = JobQueue(library, preferences, on_queue_event, only_own_jobs=True)  # never the window's other jobs
    folder = Path(entry.folder).expanduser().resolve()
    service: WatchService | None = None
    try:
        queue.restore()
        watcher = FolderWatcher(library, queue, [entry], say, settle_s, preferences.options())
        where = f"in {entry.output_dir}" if entry.output_dir else "next to each file"
        say(f"watching {folder} ({entry.backend}, {entry.model}; {', '.join(entry.formats)} {where}); Ctrl-C stops")
        # this folder's files queued before a restart (or while the window watched it) run here too
        queue.adopt(row.job_id for row in library.watched_files.all(WatchState.QUEUED)
                    if row.job_id is not None and Path(row.path).is_relative_to(folder))
        service = WatchService(watcher, poll_s)  # rounds run in a thread: Ctrl-C never cuts one in half
        service.start()
        with CtrlC() as ctrl_c:
            while not service.stop_event.is_set():
                ctrl_c.wait(poll_s)  # Ctrl-C ends this wait at once
        return EXIT_OK  # not reached: only Ctrl-C ends the watch
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not break the clean stop
        say("stopping: a job that was running resumes at the next start")
        return EXIT_INTERRUPTED
    finally:
        if service is not None:
            service.stop(STOP_TIMEOUT_S)  # the round in progress ends first
        queue.shutdown(timeout_s=STOP_TIMEOUT_S, requeue=True)
        library.close()


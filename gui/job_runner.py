"""Runs the queue: jobs in QThreads (never on the GUI thread), backends shared per name, events as signals.

The QueueController owns the scheduling rules (local: one file at a time by default, Modal: several), writes
every state change to the library as it happens, and turns a backend's events (Progress, SegmentsReady,
TimingReport) into Qt signals delivered on the GUI thread (queued connections). Dropped folders are searched,
and durations probed, in background threads too: the GUI thread never waits on the file system.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

from PySide6.QtCore import QCoreApplication, QObject, QThread, Signal

from gui.settings import Preferences
from gui.threads import keep_alive
from worker.backends.base import Backend
from worker.errors import Cancelled, ModalSetupError, WhisperDeskError, exception_line, one_line
from worker.events import CancelToken, Event, Progress, SegmentsReady, Stage, TimingReport
from worker.library import JobRecord, Library
from worker.options import TranscriptionOptions
from worker.timing import summarize, timing_line
from worker.transcript import Segment, Transcript

BackendFactory = Callable[[str, Preferences], Backend]
PROGRESS_INTERVAL_S = 0.1  # progress events closer than this are coalesced (stage changes always pass)
PROBE_DELAY_S = 0.3  # the duration prober starts this long after its first request
MODAL_NOT_SET_UP = (
    "Modal is not set up: use Modal > Set up Modal… (or run `modal token new` in a terminal), "
    "or run this job on this computer"
)


def default_backend_factory(name: str, preferences: Preferences) -> Backend:
    from worker.backends.base import create_backend

    return create_backend(name, **preferences.backend_settings(name))


BACKGROUND_NICENESS = 10


def lower_thread_priority(niceness: int = BACKGROUND_NICENESS) -> None:
    """Make the calling worker thread, and any process it starts (a local engine process inherits it), yield
    the CPU to the window: on Linux the nice value is per thread. Elsewhere it would apply to the whole app,
    so it is left alone."""
    if not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, max(current, niceness))
    except OSError:
        pass


class BackendPool:
    """One backend per name, created on first use in the calling (worker) thread, shared by jobs."""

    def __init__(self, factory: BackendFactory, preferences: Preferences) -> None:
        self._factory = factory
        self._preferences = preferences
        self._lock = threading.Lock()
        self._backends: dict[str, Backend] = {}
        self._users: Counter[str] = Counter()
        self._stale: set[str] = set()

    def acquire(self, name: str) -> Backend:
        with self._lock:
            backend = self._backends.get(name)
            if backend is None:
                backend = self._factory(name, self._preferences)  # heavy imports happen here, off the GUI thread
                self._backends[name] = backend
            self._users[name] += 1
            return backend

    def release(self, name: str) -> None:
        with self._lock:
            self._users[name] -= 1
            close = name in self._stale and self._users[name] <= 0
            backend = self._backends.pop(name, None) if close else None
            if close:
                self._stale.discard(name)
        if backend is not None:
            _close_quietly(backend)

    def reconfigure(self, preferences: Preferences) -> None:
        """New settings: idle backends are closed now, busy ones when their last job ends."""
        idle: list[Backend] = []
        with self._lock:
            self._preferences = preferences
            for name in list(self._backends):
                if self._users[name] <= 0:
                    idle.append(self._backends.pop(name))
                else:
                    self._stale.add(name)
        for backend in idle:
            threading.Thread(target=_close_quietly, args=(backend,), daemon=True).start()

    def close_all(self) -> None:
        with self._lock:
            backends = list(self._backends.values())
            self._backends.clear()
        for backend in backends:
            _close_quietly(backend)


def _close_quietly(backend: Backend) -> None:
    try:
        backend.close()
    except Exception:
        pass


class JobThread(QThread):
    """Transcribes one file with a pooled backend. Emits events as they happen and one ending signal."""

    event = Signal(int, object)  # job id, Progress | SegmentsReady | TimingReport
    succeeded = Signal(int, object, object)  # job id, Transcript, list of auto-export notes
    failed = Signal(int, str, str, bool)  # job id, one-line reason, detail, needs Modal setup
    cancelled = Signal(int)

    def __init__(
        self,
        record: JobRecord,
        pool: BackendPool,
        library: Library,
        preferences: Preferences,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.job_id = record.id
        self.backend_name = record.backend
        self.path = Path(record.path)
        self.options: TranscriptionOptions = record.options
        self.cancel_token = CancelToken()
        self._pool = pool
        self._library = library
        self._preferences = preferences
        self._last_progress = 0.0
        self._last_key: tuple[Any, ...] = ()

    def cancel(self) -> None:
        self.cancel_token.cancel()

    def _emit(self, event: Event) -> None:
        if isinstance(event, Progress):
            key = (event.stage, event.chunk_index, event.chunk_count, event.message)
            now = time.monotonic()
            if key == self._last_key and now - self._last_progress < PROGRESS_INTERVAL_S and event.fraction < 1.0:
                return  # coalesce a burst of small steps; the next one carries the latest fraction
            self._last_key, self._last_progress = key, now
        self.event.emit(self.job_id, event)

    def run(self) -> None:
        lower_thread_priority()  # the engine process started from here inherits it: the window stays responsive
        acquired = False
        try:
            self.cancel_token.raise_if_cancelled()
            backend = self._pool.acquire(self.backend_name)
            acquired = True
            transcript = backend.transcribe(self.path, self.options, self._emit, self.cancel_token)
            if self.cancel_token.cancelled:
                raise Cancelled()
            if not transcript.source:
                transcript.source = str(self.path)
            self._library.save_transcript(self.job_id, transcript)  # before anything else can go wrong
            notes = auto_export(transcript, self.path, self._preferences)
            self.succeeded.emit(self.job_id, transcript, notes)
        except Cancelled:
            self.cancelled.emit(self.job_id)
        except ModalSetupError as exc:
            self.failed.emit(self.job_id, one_line(str(exc)) or MODAL_NOT_SET_UP, "", True)
        except WhisperDeskError as exc:
            if self.cancel_token.cancelled:
                self.cancelled.emit(self.job_id)
            else:
                self.failed.emit(self.job_id, exception_line(exc), _detail(exc), False)
        except Exception as exc:  # one line in the row; the traceback on demand
            if self.cancel_token.cancelled:
                self.cancelled.emit(self.job_id)
            else:
                reason = one_line(f"unexpected error: {type(exc).__name__}: {exc}")
                self.failed.emit(self.job_id, reason, traceback.format_exc(), False)
        finally:
            if acquired:
                self._pool.release(self.backend_name)


def _detail(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return "".join(traceback.format_exception(cause)) if cause is not None else ""


def auto_export(transcript: Transcript, source: Path, preferences: Preferences) -> list[str]:
    """Write the automatic-export formats chosen in the preferences (worker.formats.auto_export: atomic, never
    overwriting); returns one note per file written or per format that failed."""
    if not preferences.auto_export_formats:
        return []
    from worker import formats

    folder = preferences.auto_export_folder or None
    notes: list[str] = []
    for fmt in preferences.auto_export_formats:
        try:
            if folder:
                Path(folder).mkdir(parents=True, exist_ok=True)
            for path in formats.auto_export(transcript, source, [fmt], folder):
                notes.append(f"exported {path}")
        except Exception as exc:  # an export problem never fails the transcription
            notes.append(f"automatic export to {fmt.upper()} failed: {one_line(str(exc))}")
    return notes


class DurationProber(QThread):
    """Probes media durations one at a time in the background (worker.audio.probe_duration)."""

    probed = Signal(int, float)  # job id, seconds (negative: could not be read)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: "queue.Queue[tuple[int, str] | None]" = queue.Queue()

    def request(self, job_id: int, path: str) -> None:
        self._queue.put((job_id, path))
        if not self.isRunning():
            self.start(QThread.Priority.LowPriority)

    def stop(self) -> None:
        self._queue.put(None)
        self.wait(5000)

    def run(self) -> None:
        lower_thread_priority()
        time.sleep(PROBE_DELAY_S)  # let a job that starts with these files do its first work first
        while True:
            item = self._queue.get()
            if item is None:
                return
            job_id, path = item
            try:
                from worker.audio import probe_duration

                seconds = float(probe_duration(path))
            except Exception:
                seconds = -1.0
            self.probed.emit(job_id, seconds)


class MediaScanner(QThread):
    """Finds the media files among dropped files and folders in the background (worker.audio.collect_media):
    a big folder or a slow network share never freezes the window. Requests are answered in order."""

    scanned = Signal(object, object)  # resolved file paths (list[str]), notes about skipped entries (list[str])

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: "queue.Queue[list[str | Path] | None]" = queue.Queue()
        self._stopping = False

    def request(self, paths: list[str | Path]) -> None:
        self._queue.put(paths)
        if not self.isRunning():
            self.start(QThread.Priority.LowPriority)

    def stop(self, timeout_ms: int = 5000) -> bool:
        """Drop the requests not started yet and wait for the one in progress; False if it is still walking."""
        self._stopping = True
        self._queue.put(None)
        return self.wait(timeout_ms)

    def run(self) -> None:
        lower_thread_priority()
        while True:
            paths = self._queue.get()
            if paths is None or self._stopping:
                return
            files, notes = scan_media(paths)
            self.scanned.emit(files, notes)


def scan_media(paths: list[str | Path]) -> tuple[list[str], list[str]]:
    """collect_media, with the files resolved to absolute paths (also file system work: done here too)."""
    from worker.audio import collect_media

    try:
        files, notes = collect_media(paths)
        return [str(file.resolve()) for file in files], notes
    except Exception as exc:  # e.g. a share that went away mid-walk: say so instead of losing the drop silently
        return [], [f"could not read the dropped files: {one_line(str(exc))}"]


class QueueController(QObject):
    """The queue's rules and state. Every change goes to the library first, then out as a signal."""

    jobAdded = Signal(object)  # JobRecord
    jobChanged = Signal(object)  # JobRecord
    jobRemoved = Signal(int)
    jobsReordered = Signal()
    jobStarted = Signal(int)
    progressed = Signal(int, float, str, object)  # job id, fraction, stage label, ETA seconds or None
    segmentsArrived = Signal(int, object)  # job id, list[Segment] (new ones)
    jobFinished = Signal(int, str)  # job id, "done" | "failed" | "cancelled"
    logLine = Signal(object, str)  # job id or None, line
    note = Signal(str)  # something a user should read once (skipped files, recovered jobs)
    pathsAdded = Signal(list, list)  # after add_paths: the new JobRecords, the notes about skipped entries
    modalSetupNeeded = Signal(str)  # the reason
    durationKnown = Signal(int, float)
    pausedChanged = Signal(bool)

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
        self.preferences = preferences
        self.pool = BackendPool(backend_factory or default_backend_factory, preferences)
        self._modal_ready = modal_ready or _modal_has_credentials
        self.paused = False
        self._threads: dict[int, JobThread] = {}
        self._ending: set[JobThread] = set()
        self._started_at: dict[int, float] = {}  # monotonic
        self._partial: dict[int, list[Segment]] = {}
        self._chunk_timings: dict[int, list[dict[str, Any]]] = {}
        self._job_timings: dict[int, list[dict[str, Any]]] = {}
        self._chunk_counts: dict[int, int] = {}
        self._progress_state: dict[int, tuple[float, str]] = {}  # latest (fraction, stage label) per job
        self._remove_when_stopped: set[int] = set()
        self._shutting_down = False
        self._closed = False  # after shutdown: late signals are ignored (the library may be closed)
        self.prober = DurationProber(self)
        self.prober.probed.connect(self._duration_probed)
        self.scanner = MediaScanner(self)
        self.scanner.scanned.connect(self._paths_scanned)

    # --- adding ------------------------------------------------------------------------------------------

    def add_paths(self, paths: Iterable[str | Path]) -> None:
        """Files and folders (searched recursively, in the background) as new queued jobs. Returns at once;
        pathsAdded follows with the new jobs and the notes about what was skipped (drops keep their order)."""
        if self._shutting_down:
            return
        self.scanner.request(list(paths))

    def _paths_scanned(self, files: list[str], notes: list[str]) -> None:
        if self._closed:
            return  # the library may be closed
        for line in notes:
            self.note.emit(line)
        records = self._queue_files(files, None)
        self.pathsAdded.emit(records, notes)

    def add_files(self, files: Iterable[str | Path], backend: str | None = None) -> list[JobRecord]:
        """Files already chosen (no folder search) as new queued jobs, at once."""
        return self._queue_files([str(Path(file).resolve()) for file in files], backend)

    def _queue_files(self, paths: list[str], backend: str | None) -> list[JobRecord]:
        """Resolved paths as queued jobs: one library transaction, then a signal and a duration probe each."""
        records = self.library.add_jobs(paths, self.preferences.options(), backend or self.preferences.backend)
        for record in records:
            self.jobAdded.emit(record)
            if not self._shutting_down:  # the prober has stopped; the next start probes what is left
                self.prober.request(record.id, record.path)
        self.schedule()
        return records

    def restore(self) -> list[JobRecord]:
        """At start: jobs left running by a killed process go back to the queue; returns every job."""
        recovered = self.library.recover_interrupted()
        if recovered:
            self.note.emit(f"{len(recovered)} interrupted job(s) queued again")
        return self.library.jobs()

    def start(self) -> None:
        """Start the queue (unless paused) and probe the durations still unknown: called once the window is up."""
        for record in self.library.jobs():
            if record.duration is None and record.status in ("queued", "failed"):
                self.prober.request(record.id, record.path)
        self.schedule()

    def warm_up(self) -> None:
        """Import the chosen backend's modules in the background while the app is idle, so that the first job
        of a session does not hold the GIL with imports while the window is busy showing it. This computer:
        light modules only (the engine loads in its own process). Modal: this process cuts and encodes the
        chunks, so numpy and PyAV load too (only for people who chose Modal)."""
        if self.preferences.backend == "modal":
            names = ["worker.modal_account", "worker.audio", "worker.chunking", "worker.backends.modal_fanout", "av"]
        else:
            names = ["multiprocessing.connection", "worker.audio", "worker.backends.local"]

        def load() -> None:
            import importlib

            for name in names:
                try:
                    importlib.import_module(name)
                except Exception:
                    pass

        threading.Thread(target=load, name="whisper-desk-warm-up", daemon=True).start()

    # --- running -----------------------------------------------------------------------------------------

    def running_ids(self) -> list[int]:
        return list(self._threads)

    def is_running(self, job_id: int) -> bool:
        return job_id in self._threads

    def set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        self.paused = paused
        self.pausedChanged.emit(paused)
        if not paused:
            self.schedule()

    def set_preferences(self, preferences: Preferences) -> None:
        self.preferences = preferences
        self.pool.reconfigure(preferences)
        self.schedule()

    def schedule(self) -> None:
        """Start queued jobs, in queue order, while their backend has a free slot."""
        if self.paused or self._shutting_down:
            return
        busy = Counter(thread.backend_name for thread in self._threads.values())
        for record in self.library.jobs():
            if record.status != "queued" or record.id in self._threads:
                continue
            if busy[record.backend] >= self.preferences.parallel(record.backend):
                continue
            if record.backend == "modal" and not self._modal_ready():
                self._fail(record.id, MODAL_NOT_SET_UP, "", needs_setup=True)
                continue
            self._start(record)
            busy[record.backend] += 1

    def _start(self, record: JobRecord) -> None:
        self.library.update_job(record.id, status="running", started=time.time(), error=None, error_detail=None,
                                finished=None, elapsed=None)
        thread = JobThread(record, self.pool, self.library, self.preferences)  # no parent: never deleted while running
        thread.event.connect(self._on_event)
        thread.succeeded.connect(self._on_succeeded)
        thread.failed.connect(self._on_failed)
        thread.cancelled.connect(self._on_cancelled)
        thread.finished.connect(lambda t=thread: self._thread_finished(t))
        self._threads[record.id] = thread
        self._started_at[record.id] = time.monotonic()
        self._partial[record.id] = []
        self._chunk_timings[record.id] = []
        self._job_timings[record.id] = []
        self._chunk_counts.pop(record.id, None)
        self._progress_state.pop(record.id, None)
        self._changed(record.id)
        self.jobStarted.emit(record.id)
        thread.start()

    def _on_event(self, job_id: int, event: object) -> None:
        if self._closed:
            return
        if job_id not in self._threads:
            return
        if isinstance(event, Progress):
            if event.chunk_count:
                self._chunk_counts[job_id] = event.chunk_count
            self._progress(job_id, float(event.fraction), event.label())
        elif isinstance(event, SegmentsReady):
            segments = list(event.segments)
            self._partial.setdefault(job_id, []).extend(segments)
            self.segmentsArrived.emit(job_id, segments)
            # segments carry their own progress: the audio covered so far (for backends with coarse Progress)
            record = self.library.job(job_id)
            if segments and record is not None and record.duration:
                covered = max(segment.end for segment in self._partial[job_id]) / record.duration
                fraction, label = self._progress_state.get(job_id, (0.0, ""))
                if not label.startswith(Stage.TRANSCRIBING.value):
                    label = Stage.TRANSCRIBING.value
                if covered * 0.99 > fraction:
                    self._progress(job_id, covered * 0.99, label)
        elif isinstance(event, TimingReport):
            timings = dict(event.timings)
            if event.chunk_index is None:
                self._job_timings.setdefault(job_id, []).append(timings)
            else:
                self._chunk_timings.setdefault(job_id, []).append(timings)
            count = timings.get("chunk_count") or self._chunk_counts.get(job_id)
            self._log(job_id, timing_line(timings, event.chunk_index, count))

    def _progress(self, job_id: int, fraction: float, label: str) -> None:
        """The bar only moves forward; the ETA comes from the time so far and the fraction done."""
        previous, _ = self._progress_state.get(job_id, (0.0, ""))
        fraction = max(previous, min(1.0, max(0.0, fraction)))
        self._progress_state[job_id] = (fraction, label)
        elapsed = time.monotonic() - self._started_at.get(job_id, time.monotonic())
        eta = elapsed * (1.0 - fraction) / fraction if 0.02 < fraction < 1.0 else None
        self.progressed.emit(job_id, fraction, label, eta)

    def _on_succeeded(self, job_id: int, transcript: Transcript, notes: list[str]) -> None:
        if self._closed:
            return
        started = self._started_at.pop(job_id, None)
        elapsed = time.monotonic() - started if started is not None else None
        fields: dict[str, Any] = {"status": "done", "finished": time.time(), "elapsed": elapsed}
        record = self.library.job(job_id)
        if record is not None and record.duration is None and transcript.duration:
            fields["duration"] = float(transcript.duration)
        self.library.update_job(job_id, **fields)
        self._log_summary(job_id, transcript, elapsed or 0.0)
        for line in notes:
            self._log(job_id, line)
        self._end(job_id, "done")

    def _on_failed(self, job_id: int, reason: str, detail: str, needs_setup: bool) -> None:
        if self._closed:
            return
        self._fail(job_id, reason, detail, needs_setup)

    def _on_cancelled(self, job_id: int) -> None:
        if self._closed:
            return
        started = self._started_at.pop(job_id, None)
        elapsed = time.monotonic() - started if started is not None else None
        if self._shutting_down:
            self.library.update_job(job_id, status="queued", started=None)
        else:
            self.library.update_job(job_id, status="cancelled", finished=time.time(), elapsed=elapsed)
        self._end(job_id, "cancelled")

    def _fail(self, job_id: int, reason: str, detail: str, needs_setup: bool = False) -> None:
        started = self._started_at.pop(job_id, None)
        elapsed = time.monotonic() - started if started is not None else None
        self.library.update_job(job_id, status="failed", error=reason, error_detail=detail or None,
                                finished=time.time(), elapsed=elapsed)
        record = self.library.job(job_id)
        self._log(job_id, f"failed: {reason}")
        if needs_setup:
            self.modalSetupNeeded.emit(reason)
        if record is not None and job_id not in self._threads:
            self._changed(job_id)
            self.jobFinished.emit(job_id, "failed")
            return
        self._end(job_id, "failed")

    def _end(self, job_id: int, status: str) -> None:
        thread = self._threads.pop(job_id, None)
        if thread is not None:
            self._ending.add(thread)
        if job_id in self._remove_when_stopped:
            self._remove_when_stopped.discard(job_id)
            self._remove_now(job_id)
        else:
            self._changed(job_id)
            self.jobFinished.emit(job_id, status)
        self.schedule()

    def _thread_finished(self, thread: JobThread) -> None:
        self._ending.discard(thread)
        if not self._closed and self._threads.get(thread.job_id) is thread:  # ended without a signal (should not happen)
            self._threads.pop(thread.job_id)
            self.library.update_job(thread.job_id, status="failed", error="the job stopped unexpectedly")
            self._changed(thread.job_id)
            self.schedule()
        thread.deleteLater()

    def _log(self, job_id: int | None, line: str) -> None:
        record = self.library.job(job_id) if job_id is not None else None
        text = f"{record.name}: {line}" if record is not None else line
        self.library.add_log_line(job_id, text)
        self.logLine.emit(job_id, text)

    def _log_summary(self, job_id: int, transcript: Transcript, wall_s: float) -> None:
        chunks = self._chunk_timings.pop(job_id, []) or self._job_timings.pop(job_id, [])
        if not chunks:
            chunks = list(transcript.timings.get("chunks") or []) or ([dict(transcript.timings)] if transcript.timings else [])
            for timings in chunks:  # the backend sent no timing events: log what the transcript carries
                self._log(job_id, timing_line(timings))
        self._job_timings.pop(job_id, None)
        summary = summarize(chunks, wall_s, self.preferences.dollars_per_gpu_hour)
        self._log(job_id, summary.line())

    def _changed(self, job_id: int) -> None:
        record = self.library.job(job_id)
        if record is not None:
            self.jobChanged.emit(record)

    def _duration_probed(self, job_id: int, seconds: float) -> None:
        if self._closed:
            return
        if seconds >= 0 and self.library.job(job_id) is not None:
            self.library.update_job(job_id, duration=seconds)
            self._changed(job_id)
        self.durationKnown.emit(job_id, seconds)

    def partial_transcript(self, job_id: int) -> Transcript | None:
        """The segments a running job has returned so far, in time order."""
        if job_id not in self._partial:
            return None
        segments = sorted(self._partial[job_id], key=lambda s: (s.start, s.end))
        return Transcript(segments=segments, source=None)

    # --- queue actions (each takes several ids: multi-select) ----------------------------------------------

    def cancel(self, job_ids: Iterable[int]) -> None:
        for job_id in job_ids:
            thread = self._threads.get(job_id)
            if thread is not None:
                thread.cancel()  # the worker ends with Cancelled at its next check
                continue
            record = self.library.job(job_id)
            if record is not None and record.status == "queued":
                self.library.update_job(job_id, status="cancelled", finished=time.time())
                self._changed(job_id)
                self.jobFinished.emit(job_id, "cancelled")

    def retry(self, job_ids: Iterable[int]) -> None:
        for job_id in job_ids:
            record = self.library.job(job_id)
            if record is None or job_id in self._threads or record.status in ("queued", "running"):
                continue
            self.library.update_job(job_id, status="queued", error=None, error_detail=None, started=None,
                                    finished=None, elapsed=None)
            self._changed(job_id)
        self.schedule()

    def remove(self, job_ids: Iterable[int]) -> None:
        for job_id in list(job_ids):
            thread = self._threads.get(job_id)
            if thread is not None:
                self._remove_when_stopped.add(job_id)
                thread.cancel()
            else:
                self._remove_now(job_id)
        self.schedule()

    def _remove_now(self, job_id: int) -> None:
        self.library.remove_job(job_id)
        for store in (self._partial, self._chunk_timings, self._job_timings, self._chunk_counts, self._started_at,
                      self._progress_state):
            store.pop(job_id, None)
        self.jobRemoved.emit(job_id)

    def set_backend(self, job_ids: Iterable[int], backend: str) -> None:
        for job_id in job_ids:
            record = self.library.job(job_id)
            if record is None or job_id in self._threads or record.backend == backend:
                continue
            self.library.update_job(job_id, backend=backend)
            self._changed(job_id)

    def move(self, job_ids: Iterable[int], delta: int) -> None:
        """Move the given jobs one place up (delta -1) or down (+1), keeping their relative order."""
        selected = set(job_ids)
        order = [record.id for record in self.library.jobs()]
        if delta < 0:
            for i in range(1, len(order)):
                if order[i] in selected and order[i - 1] not in selected:
                    self.library.move_job(order[i], order[i - 1])
                    order[i - 1], order[i] = order[i], order[i - 1]
        else:
            for i in range(len(order) - 2, -1, -1):
                if order[i] in selected and order[i + 1] not in selected:
                    self.library.move_job(order[i + 1], order[i])
                    order[i], order[i + 1] = order[i + 1], order[i]
        self.jobsReordered.emit()
        self.schedule()

    # --- shutdown ----------------------------------------------------------------------------------------

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop everything: running jobs go back to the queue (they resume at the next start)."""
        self._shutting_down = True
        for job_id, thread in list(self._threads.items()):
            self.library.update_job(job_id, status="queued", started=None)
            thread.cancel()
        deadline = time.monotonic() + timeout_s / 2
        threads = list(self._threads.values()) + list(self._ending)
        for thread in threads:
            thread.wait(max(0, int((deadline - time.monotonic()) * 1000)))
        self.pool.close_all()  # also unblocks a backend that did not notice the cancel
        deadline = time.monotonic() + timeout_s / 2
        for thread in threads:
            if thread.isRunning():
                thread.wait(max(0, int((deadline - time.monotonic()) * 1000)))
        for thread in threads:
            if thread.isRunning():
                keep_alive(thread)
        self._stop_scanner()
        self.prober.stop()
        QCoreApplication.sendPostedEvents(self)  # deliver what ended while we waited (e.g. a job that just finished)
        self._closed = True

    def _stop_scanner(self) -> None:
        """Wait for a scan in progress; one stuck on a dead share is let go (never destroyed while running)."""
        if not self.scanner.stop():
            self.scanner.scanned.disconnect(self._paths_scanned)
            self.scanner.setParent(None)
            keep_alive(self.scanner)



def _modal_has_credentials() -> bool:
    try:
        from worker.modal_account import has_credentials

        return has_credentials()
    except Exception:
        return False

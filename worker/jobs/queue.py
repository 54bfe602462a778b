"""The one job queue (no Qt): the window, the command line and the wizard all run their jobs through it.

A job goes queued → running → done | failed | cancelled (JobStatus). The queue starts queued jobs in queue
order while their backend has a free slot (Preferences.parallel: this computer one file at a time by default,
Modal several), writes every change to the library first, then reports it to one listener as an event that
carries the change (worker.jobs.events: the added job's record, the new segments, the status and its error, the
edited transcript…), so no listener reads the library to learn what happened. Work runs through `start(fn)`
(a plain thread by default).

The queue is also the one way to write the library's jobs and transcripts from outside a job: an editor's saves
(save_edit), subtitles imported for review (add_review_job), a speaker's voice (save_voice), and re-transcribing
a region of a file (transcribe_region, on the same backends as the jobs).

Reports are posted under the queue's lock, in the order things happen, and delivered after it is released (one
thread at a time, in that order: worker.jobs.outbox), so a listener may call back into the queue. When a call
returns, its reports have been delivered, unless another thread was delivering then (it delivers them next) or
the call came from inside the listener (they follow once the listener returns). The listener must return
quickly (the window turns each report into one queued Qt signal; the CLI prints).

A running job holds a lease in the library (claim_job / heartbeat / release_job), so another process on the
same library never runs it too; a crashed process's jobs are re-queued at the next start (restore). Under a
window the queue also lists the jobs other processes add (`whisper-desk serve`, `transcribe`, a watch): a cheap
look for new job ids with its heartbeat reports each as JobAdded, then follows it to its end.

The same recording is never transcribed twice by accident (worker.jobs.same_recording): a queued job starts
only once its file's content (SHA-256, read in the background by the hasher) is known. If a finished job had the
same content, model and options, the job takes a copy of its transcript instead of a run (TranscriptReused, then
JobFinished done); if one of this queue's jobs is transcribing that recording, or will first, the job waits for
it. Retry (the window's "Transcribe again", `--again`) transcribes it even so.
"""

from __future__ import annotations

import logging
import os
import queue as _queue
import sqlite3
import sys
import threading
import time
import traceback
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from worker.backends.events import Event, JobNote, Progress, SegmentsReady, Stage, TimingReport, timing_line
from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, ModalSetupError, WhisperDeskError, exception_line, one_line
from worker.core.options import TranscriptionOptions
from worker.jobs.backend_pool import BackendFactory, BackendPool, default_backend_factory
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
    RegionTranscribed,
    SegmentsArrived,
    SummaryLine,
    TimingLine,
    TranscriptEdited,
    TranscriptReused,
    VoiceSaved,
)
from worker.jobs.outbox import Outbox
from worker.jobs.same_recording import content_sha256, copy_transcript, earlier_transcript, reuse_line, same_recording
from worker.library.job_status import JobStatus
from worker.library.jobs import HEARTBEAT_S, JobRecord, new_lease_owner
from worker.library.library import Library
from worker.modal.cost import summarize
from worker.transcripts.model import Segment, Transcript

if TYPE_CHECKING:
    from worker.jobs.preferences import Preferences

__all__ = [
    "Failure", "Listener", "JobQueue", "MODAL_NOT_SET_UP", "SerialWorker", "auto_export", "default_backend_factory",
    "describe_failure", "remove_owned_copy", "scan_media", "start_thread",
]

log = logging.getLogger("whisper_desk.queue")

PROGRESS_INTERVAL_S = 0.1  # progress events closer than this are coalesced (stage changes always pass)
PROBE_DELAY_S = 0.3  # the duration prober starts this long after its first request
LIBRARY_CHECK_S = 2.0  # under a window: how often the library is looked at for jobs other processes added
FOLLOW_CHECK_S = 1.0  # how often a job waiting on another process (it runs the job, or the same recording) is looked at
ELSEWHERE = (": another process's job (whisper-desk serve, transcribe or watch), which waits for it: "
             "cancel it there; it can be removed here once it has ended")
# a window's jobs yield to its GUI thread (at nice 0 it gets 3x their CPU share when both want a core), without
# starving under other load: at nice 10 a job got a tenth of what a busy program beside it got (jfk through the
# window: 7 s on an idle machine, over 60 s with both cores busy)
BACKGROUND_NICENESS = 5
MODAL_NOT_SET_UP = (
    "Modal is not set up: use Modal > Set up Modal… (or run `modal token new` in a terminal), "
    "or run this job on this computer"
)

StartWork = Callable[[Callable[[], None]], object]
Listener = Callable[[QueueEvent], None]


# --- helpers ------------------------------------------------------------------------------------------------

def start_thread(fn: Callable[[], None]) -> threading.Thread:
    """The default way to run work: a plain daemon thread (a stuck backend never blocks the process exit)."""
    thread = threading.Thread(target=fn, name="whisper-desk-work", daemon=True)
    thread.start()
    return thread


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
    except OSError as exc:  # a sandbox that forbids it: the job runs at the usual priority
        log.info("could not lower the worker thread's priority: %s", exc)


def _named(name: str | None, line: str) -> str:
    """A log line as written: a job's lines start with its file's name."""
    return f"{name}: {line}" if name else line


def _by_content(jobs: Iterable[JobRecord]) -> dict[str, list[JobRecord]]:
    """Jobs whose content is known, by their content."""
    grouped: dict[str, list[JobRecord]] = {}
    for job in jobs:
        if job.content_sha256 is not None:
            grouped.setdefault(job.content_sha256, []).append(job)
    return grouped


def remove_owned_copy(path: Path) -> None:
    """The app's own copy of a file (an API upload, refused or of a removed job), and its folder if nothing else
    is in it."""
    try:
        path.unlink(missing_ok=True)
        path.parent.rmdir()
    except OSError as exc:  # left as it is: nothing depends on it
        log.warning("the app's copy %s could not be removed: %s", path, exc)


def modal_has_credentials() -> bool:
    from worker.modal.credentials import has_credentials  # a bad or missing config reads as "no credentials"

    return has_credentials()


@dataclass(frozen=True)
class Failure:
    """How a job that raised is reported: one line for the row (and the terminal), the detail on demand."""

    reason: str
    detail: str = ""
    needs_modal_setup: bool = False


def describe_failure(exc: BaseException) -> Failure:
    """The one mapping from an exception to what a user reads (the window and the CLI both use it)."""
    if isinstance(exc, ModalSetupError):
        return Failure(one_line(str(exc)) or MODAL_NOT_SET_UP, "", True)
    if isinstance(exc, WhisperDeskError):
        cause = exc.__cause__ or exc.__context__
        detail = "".join(traceback.format_exception(cause)) if cause is not None else ""
        return Failure(exception_line(exc), detail)
    return Failure(one_line(f"unexpected error: {type(exc).__name__}: {exc}"), "".join(traceback.format_exception(exc)))


def auto_export(transcript: Transcript, source: Path, preferences: Preferences) -> list[str]:
    """Write the automatic-export formats chosen in the preferences through the one export pipeline
    (worker.jobs.export: atomic, never overwriting, missing words aligned); returns one note per file written, per
    format that failed, and per transcript whose word timestamps could not be computed."""
    if not preferences.auto_export_formats:
        return []
    from worker.jobs.export import export_beside

    outcomes, notes = export_beside(transcript, source, preferences.auto_export_formats,
                                    preferences.auto_export_folder or None, preferences.subtitle_rules())
    return [f"exported {o.path}" if o.path else f"automatic export to {o.fmt.upper()} failed: {o.problem}"
            for o in outcomes] + notes


def scan_media(paths: list[str | Path]) -> tuple[list[str], list[str]]:
    """worker.media.audio.collect_media, with the files resolved to absolute paths."""
    from worker.media.audio import collect_media

    try:
        files, notes = collect_media(paths)
        return [str(file.resolve()) for file in files], notes
    except Exception as exc:  # e.g. a share that went away mid-walk: say so instead of losing the drop silently
        return [], [f"could not read the dropped files: {one_line(str(exc))}"]


def probe_seconds(path: str) -> float:
    """The media's duration, or -1.0 when it cannot be read (the job says why when it runs)."""
    from worker.media.audio import probe_duration

    try:
        return float(probe_duration(path))
    except (WhisperDeskError, OSError) as exc:
        log.info("no duration for %s: %s", path, one_line(str(exc)))
        return -1.0


class SerialWorker:
    """Requests handled one at a time, in order, in one background loop started on the first request, at a lower
    priority unless `lower_priority` is False (a thread it starts inherits its priority)."""

    def __init__(self, handle: Callable[[Any], None], start: StartWork, delay_s: float = 0.0,
                 lower_priority: bool = True) -> None:
        self._handle = handle
        self._start = start
        self._delay_s = delay_s
        self._lower_priority = lower_priority
        self._requests: "_queue.Queue[Any]" = _queue.Queue()
        self._lock = threading.Lock()
        self._running = False
        self._stopping = False
        self._ended = threading.Event()
        self._ended.set()

    def request(self, item: Any) -> None:
        with self._lock:
            if self._stopping:
                return
            self._requests.put(item)
            if not self._running:
                self._running = True
                self._ended.clear()
                self._start(self._loop)

    @property
    def running(self) -> bool:
        """Whether its background loop is still going."""
        return not self._ended.is_set()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Drop the requests not started yet and wait for the one in progress; False if it is still busy."""
        with self._lock:
            self._stopping = True
            self._requests.put(None)
        return self._ended.wait(timeout_s)

    def _loop(self) -> None:
        try:
            if self._lower_priority:
                lower_thread_priority()
            if self._delay_s:
                time.sleep(self._delay_s)  # let a job that starts with these files do its first work first
            while True:
                item = self._requests.get()
                if item is None or self._stopping:
                    return
                self._handle(item)
        finally:
            self._ended.set()


@dataclass
class _Run:
    """A running job's state (one object per running job, dropped when it ends)."""

    record: JobRecord
    cancel: CancelToken = field(default_factory=CancelToken)
    started_at: float = field(default_factory=time.monotonic)
    ended: threading.Event = field(default_factory=threading.Event)
    chunk_timings: list[dict[str, Any]] = field(default_factory=list)
    job_timings: list[dict[str, Any]] = field(default_factory=list)
    chunk_count: int | None = None
    fraction: float = 0.0
    label: str = ""
    throttle_key: tuple[Any, ...] = ()
    throttle_at: float = 0.0
    remove_when_stopped: bool = False
    requeued: bool = False  # shutdown put it back in the queue
    reusing: JobRecord | None = None  # not transcribed: this finished job's transcript is copied

    @property
    def job_id(self) -> int:
        return self.record.id


# --- the queue ----------------------------------------------------------------------------------------------

class JobQueue:
    """The queue's rules and state. Every change goes to the library first, then to the listener."""

    def __init__(
        self,
        library: Library,
        preferences: Preferences,
        listener: Listener | None = None,
        *,
        backend_factory: BackendFactory | None = None,
        start: StartWork | None = None,
        modal_ready: Callable[[], bool] | None = None,
        owner: str | None = None,
        probe_delay_s: float = PROBE_DELAY_S,
        heartbeat_s: float = HEARTBEAT_S,
        only_own_jobs: bool = False,
        under_window: bool = False,
        library_check_s: float = LIBRARY_CHECK_S,
    ) -> None:
        """The queue runs only the jobs it knows: those added or adopted through it and, unless `only_own_jobs`
        (the CLI, a watch), every job of the library at restore(). So a job another process queues later is
        that process's to run; one of ours another live process took is followed to its end. `under_window`:
        a window shares the CPU with the jobs, so they run at a lower priority (the CLI runs at full speed), and
        it lists every job: from restore() on, the jobs other processes add are reported (JobAdded) and followed
        to their end, looked for every `library_check_s`."""
        self.library = library
        self.preferences = preferences  # as held in memory: jobs and region re-transcriptions both use these
        self._outbox: Outbox[QueueEvent] = Outbox(listener or (lambda _event: None))
        self.owner = owner or new_lease_owner()
        self.pool = BackendPool(backend_factory or default_backend_factory, preferences)
        self._start_work: StartWork = start or start_thread
        self._modal_ready = modal_ready or modal_has_credentials
        self._heartbeat_s = heartbeat_s
        self._lock = threading.RLock()
        self._depth = 0  # how deep the thread holding the lock is in _locked()
        self._runs: dict[int, _Run] = {}
        self._ending: list[_Run] = []  # ended in the queue, their thread still finishing
        self._partial: dict[int, list[Segment]] = {}  # kept after the job ends (until it restarts or is removed)
        self._own: set[int] = set()  # the jobs this queue runs (see above)
        self._adopt_all = not only_own_jobs
        self._under_window = under_window
        self._followed: set[int] = set()  # our jobs another live process is running
        self._lists_library = under_window
        self._library_check_s = library_check_s
        self._newest_listed: int | None = None  # the newest job id looked at (None: not listing yet)
        self._listed: set[int] = set()  # ids reported as added since (not to be reported again)
        self._elsewhere: dict[int, JobRecord] = {}  # other processes' jobs, as last reported, until they end
        self._hashing: dict[int, CancelToken] = {}  # queued jobs whose file is being read (they wait for it)
        self._unhashable: set[int] = set()  # ... whose file could not be read: they run (and say why)
        self.paused = False
        self._shutting_down = False
        self._closed = False  # after shutdown: late results are ignored (the library may be closed)
        self._heartbeat_stop = threading.Event()
        self._heartbeat_started = False
        self.scanner = SerialWorker(self._scan, self._start_work)
        self.prober = SerialWorker(self._probe, self._start_work, probe_delay_s)
        # no delay: queued jobs wait for it; the jobs it starts inherit its priority (lowered under a window only)
        self.hasher = SerialWorker(self._hash_content, self._start_work, lower_priority=under_window)

    @property
    def listener(self) -> Listener:
        return self._outbox.listener

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The queue's lock (every use of it goes through here). What was reported meanwhile is delivered
        once the thread's outermost `with` has released it."""
        outermost = False
        try:
            with self._lock:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                    outermost = self._depth == 0
        finally:
            if outermost:
                self._outbox.deliver()

    def _report(self, event: QueueEvent) -> None:
        """Post a report (called with the lock held, after the library was written)."""
        if isinstance(event, JobAdded) and self._newest_listed is not None:
            self._listed.add(event.record.id)  # the look for other processes' jobs skips it
        self._outbox.post(event)

    def wait_delivered(self, timeout_s: float | None = None) -> bool:
        """Wait until every report made so far has reached the listener (see the module docstring)."""
        return self._outbox.wait_delivered(timeout_s)

    # --- adding ------------------------------------------------------------------------------------------

    def add_paths(self, paths: Iterable[str | Path]) -> None:
        """Files and folders (searched recursively, in the background) as new queued jobs. Returns at once;
        PathsAdded follows with the new jobs and the notes about what was skipped (requests keep their order)."""
        if not self._shutting_down:
            self.scanner.request(list(paths))

    def _scan(self, paths: list[str | Path]) -> None:
        files, notes = scan_media(paths)
        with self._locked():
            if self._closed:
                return
            for line in notes:
                self._report(Note(line))
            records = self._queue_files(files, None, None)
            self._report(PathsAdded(records, notes))

    def add_files(self, files: Iterable[str | Path], backend: str | None = None,
                  options: TranscriptionOptions | None = None, again: bool = False,
                  owned_copy: bool = False) -> list[JobRecord]:
        """Files already chosen (no folder search) as new queued jobs, at once. `options`/`backend` default to
        the preferences'. `again`: transcribed even if a finished job had the same recording (`--again`).
        `owned_copy`: the files are the app's own copies (API uploads), removed with their jobs."""
        with self._locked():
            return self._queue_files([str(Path(file).resolve()) for file in files], backend, options, again,
                                     owned_copy)

    def adopt(self, job_ids: Iterable[int]) -> None:
        """Run these queued jobs of the library too (with only_own_jobs: jobs this caller queued in an earlier
        run, such as a watch folder's files before a restart)."""
        with self._locked():
            self._own.update(job_ids)
            self.schedule()

    def _queue_files(self, paths: list[str], backend: str | None, options: TranscriptionOptions | None,
                     again: bool = False, owned_copy: bool = False) -> list[JobRecord]:
        records = self.library.jobs.add_many(paths, options or self.preferences.options(),
                                             backend or self.preferences.backend, transcribe_again=again,
                                             owned_copy=owned_copy)
        self._own.update(record.id for record in records)
        for record in records:
            self._report(JobAdded(record))
            self._request_hash(record)  # (also while paused: the job can start as soon as it is resumed)
            if not self._shutting_down:  # the prober has stopped; the next start probes what is left
                self.prober.request((record.id, record.path))
        self.schedule()
        return records

    def _request_hash(self, record: JobRecord) -> None:
        """Read the job's file (its SHA-256) in the background: the job waits for it."""
        if record.id in self._hashing or self._shutting_down:
            return
        cancel = CancelToken()
        self._hashing[record.id] = cancel
        self.hasher.request((record.id, record.path, cancel))

    def _hash_content(self, item: tuple[int, str, CancelToken]) -> None:
        """In the hasher's thread: the file's content, written to the job; then the queue goes on. A file that
        cannot be read runs as it is (the job says why)."""
        job_id, path, cancel = item
        digest: str | None = None
        try:
            digest = content_sha256(path, cancel)
        except Cancelled:
            return  # cancelled or removed meanwhile (whoever cancelled it let it go)
        except OSError as exc:
            log.info("could not read %s to know its content: %s", path, exc)
        with self._locked():
            if self._hashing.get(job_id) is not cancel:
                return
            del self._hashing[job_id]
            if self._closed:
                return
            record = self.library.jobs.get(job_id)
            if record is None or record.status != JobStatus.QUEUED:
                return
            if digest is None:
                self._unhashable.add(job_id)
            else:  # bookkeeping, as a lease is: the job's next report (its start or its ending) carries it
                self.library.jobs.set_content(job_id, digest)
            self.schedule()

    def _stop_hashing(self, job_id: int) -> None:
        cancel = self._hashing.pop(job_id, None)
        if cancel is not None:
            cancel.cancel()

    def _probe(self, item: tuple[int, str]) -> None:
        job_id, path = item
        seconds = probe_seconds(path)
        with self._locked():
            if self._closed:
                return
            if seconds >= 0 and self.library.jobs.get(job_id) is not None:
                self.library.jobs.set_duration(job_id, seconds)
                run = self._runs.get(job_id)
                if run is not None:  # its segments' progress is measured against it
                    run.record = replace(run.record, duration=seconds)
                self._changed(job_id)
            self._report(DurationKnown(job_id, seconds))

    def restore(self) -> list[JobRecord]:
        """At start: jobs left running by a process that is gone go back to the queue; returns every job."""
        with self._locked():
            recovered = self.library.jobs.recover_interrupted()
            if recovered:
                self._report(Note(f"{len(recovered)} interrupted job(s) queued again"))
            jobs = self.library.jobs.all()
            if self._adopt_all:
                self._own.update(record.id for record in jobs)
            if self._lists_library:  # from here on, the jobs other processes add are listed too
                self._newest_listed = max((record.id for record in jobs), default=0)
                self._start_heartbeat()
            return jobs

    def start(self) -> None:
        """Start the queue (unless paused) and probe the durations and contents still unknown."""
        with self._locked():
            for record in self.library.jobs.all():
                if record.duration is None and record.status in (JobStatus.QUEUED, JobStatus.FAILED):
                    self.prober.request((record.id, record.path))
                if record.status == JobStatus.QUEUED and record.content_sha256 is None and record.id in self._own:
                    self._request_hash(record)
            self.schedule()

    def warm_up(self) -> None:
        """Import the chosen backend's modules in the background while the app is idle, so that the first job
        of a session does not hold the GIL with imports while the window is busy showing it. This computer:
        light modules only (the engine loads in its own process). Modal: this process cuts and encodes the
        chunks, so numpy and PyAV load too (only for people who chose Modal)."""
        if self.preferences.backend == "modal":
            names = ["worker.modal.checks", "worker.media.audio", "worker.media.chunking", "worker.modal.fanout", "av"]
        else:
            names = ["multiprocessing.connection", "worker.media.audio", "worker.backends.local"]

        def load() -> None:
            import importlib

            for name in names:
                try:
                    importlib.import_module(name)
                except (ImportError, OSError) as exc:  # the job that needs it says why, when it runs
                    log.info("warm-up: could not import %s: %s", name, exc)

        self._start_work(load)

    # --- state -------------------------------------------------------------------------------------------

    def running_ids(self) -> list[int]:
        with self._locked():
            return list(self._runs)

    def is_running(self, job_id: int) -> bool:
        with self._locked():
            return job_id in self._runs

    def partial_transcript(self, job_id: int) -> Transcript | None:
        """The segments a job has returned so far in this session, in time order."""
        with self._locked():
            if job_id not in self._partial:
                return None
            segments = sorted(self._partial[job_id], key=lambda s: (s.start, s.end))
        return Transcript(segments=segments, source=None)

    def set_paused(self, paused: bool) -> None:
        with self._locked():
            if paused == self.paused:
                return
            self.paused = paused
            self._report(PausedChanged(paused))
            if not paused:
                self.schedule()

    def set_preferences(self, preferences: Preferences) -> None:
        with self._locked():
            self.preferences = preferences
            self.pool.reconfigure(preferences)
            self.schedule()

    # --- scheduling --------------------------------------------------------------------------------------

    def schedule(self) -> None:
        """Start queued jobs, in queue order, while their backend has a free slot. A job waits until its file's
        content is known; then a finished job of the same recording, model and options gives it its transcript
        (no slot needed), or one of ours transcribing it, or queued ahead of it, is waited for."""
        with self._locked():
            if self.paused or self._shutting_down:
                return
            busy = Counter(run.record.backend for run in self._runs.values() if run.reusing is None)
            jobs = self.library.jobs.all()
            finished = _by_content(job for job in jobs if job.status == JobStatus.DONE)
            ahead = _by_content(run.record for run in self._runs.values())  # transcribing here, or about to
            unread = False  # a job is still being read: the jobs after it keep their turn (queue order)
            for record in jobs:
                if record.id in self._runs:
                    continue
                if record.id not in self._own:
                    continue  # another process's, queued after our start
                if record.status == JobStatus.RUNNING:  # another live process runs one of ours
                    self._follow(record.id)
                    continue
                if record.status != JobStatus.QUEUED:
                    continue
                if record.content_sha256 is None and record.id not in self._unhashable:
                    self._request_hash(record)  # it starts once its content is known
                    unread = True
                    continue
                key = record.content_sha256 or ""
                earlier = earlier_transcript(record, finished.get(key, ()))
                if earlier is not None:
                    self._start_reuse(record, earlier)
                    continue
                if not record.transcribe_again and any(same_recording(record, job) for job in ahead.get(key, ())):
                    continue  # its transcript is taken once that job is done
                ahead.setdefault(key, []).append(record)
                if unread or busy[record.backend] >= self.preferences.parallel(record.backend):
                    continue
                if record.backend == "modal" and not self._modal_ready():
                    self._fail_queued(record, MODAL_NOT_SET_UP)
                    continue
                if self._start(record):
                    busy[record.backend] += 1
                else:  # another live process took it just now
                    self._follow(record.id)

    def _start(self, record: JobRecord) -> bool:
        if not self.library.jobs.claim(record.id, self.owner):
            return False  # another live process runs it, or the same recording (its transcript is taken once done)
        self.library.jobs.mark_started(record.id, time.time())
        run = _Run(self.library.jobs.get(record.id) or record)
        self._runs[record.id] = run
        self._partial[record.id] = []
        self._report(JobChanged(run.record))
        self._report(JobStarted(record.id, run.record))
        self._start_heartbeat()
        self._start_work(lambda: self._run_job(run))
        return True

    def _start_reuse(self, record: JobRecord, earlier: JobRecord) -> None:
        """Give the job a copy of `earlier`'s transcript (in a worker thread: the automatic export may write
        files) instead of a run; claimed first, so no other process runs it meanwhile."""
        if not self.library.jobs.claim(record.id, self.owner, transcribing=False):
            self._follow(record.id)  # another live process took it just now
            return
        run = _Run(self.library.jobs.get(record.id) or record, reusing=earlier)
        self._runs[record.id] = run
        self._start_heartbeat()
        self._start_work(lambda: self._reuse_job(run, earlier))

    def _run_job(self, run: _Run) -> None:
        """In a worker thread: transcribe, label speakers if asked, save, auto-export; then end the job."""
        if self._under_window:
            lower_thread_priority()  # the engine process started from here inherits it: the window stays responsive
        record = run.record
        path = Path(record.path)
        options = record.options
        with self._reporting_the_end(run):
            run.cancel.raise_if_cancelled()
            backend = self.pool.acquire(record.backend)
            try:
                emit = lambda event: self._on_event(run, event)  # noqa: E731
                transcript = backend.transcribe(path, options, emit, run.cancel, ledger=self.library.chunk_ledger(record.id))
                if options.speakers:
                    from worker.speakers.labelling import label_speakers

                    transcript = label_speakers(path, transcript, options, emit, run.cancel,
                                                voices=self.library.voices.all())
            finally:
                self.pool.release(record.backend)
            if run.cancel.cancelled:
                raise Cancelled()
            if not transcript.source:
                transcript.source = str(path)
            self.library.transcripts.save(record.id, transcript)  # before anything else can go wrong
            notes = [] if self._watch_exports(record) else auto_export(transcript, path, self.preferences)
            self._succeeded(run, transcript, notes)

    def _reuse_job(self, run: _Run, earlier: JobRecord) -> None:
        """In a worker thread: the earlier job's transcript copied to this job, exported as a run's would be; then
        the job ends done. No backend runs."""
        record = run.record
        with self._reporting_the_end(run):
            run.cancel.raise_if_cancelled()
            transcript = copy_transcript(self.library, earlier, record)
            if transcript is None:  # the earlier job was removed meanwhile: this one is transcribed after all
                self._reuse_lost(run)
                return
            notes = [] if self._watch_exports(record) else auto_export(transcript, Path(record.path), self.preferences)
            self._reused(run, earlier, transcript, notes)

    @contextmanager
    def _reporting_the_end(self, run: _Run) -> Iterator[None]:
        """Around a job's work in its thread: every ending is reported (done by the work itself; cancelled,
        failed or interrupted here), then the run is over."""
        try:
            yield
        except BaseException as exc:
            if isinstance(exc, Cancelled) or run.cancel.cancelled:
                self._cancelled(run)
            else:
                self._failed(run, describe_failure(exc))
            if not isinstance(exc, Exception):
                raise
        finally:
            run.ended.set()
            with self._locked():
                if run in self._ending:
                    self._ending.remove(run)

    def _watch_exports(self, record: JobRecord) -> bool:
        """A watch folder's job: its outputs are the folder's only (not the automatic export's too)."""
        if not self.preferences.auto_export_formats:
            return False
        from worker.jobs.watch_folders import exports_itself

        return exports_itself(self.library, record.id, record.path)

    def _on_event(self, run: _Run, event: Event) -> None:
        """A backend's event (in the job's thread): throttled, written, then reported."""
        if isinstance(event, Progress):
            key = (event.stage, event.chunk_index, event.chunk_count, event.message)
            now = time.monotonic()
            if key == run.throttle_key and now - run.throttle_at < PROGRESS_INTERVAL_S and event.fraction < 1.0:
                return  # coalesce a burst of small steps; the next one carries the latest fraction
            run.throttle_key, run.throttle_at = key, now
        elif isinstance(event, SegmentsReady) and event.segments:
            self.library.search_index.append(run.job_id, list(event.segments))
        with self._locked():
            if self._closed or self._runs.get(run.job_id) is not run:
                return
            if isinstance(event, Progress):
                if event.chunk_count:
                    run.chunk_count = event.chunk_count
                self._progress(run, float(event.fraction), event.label())
            elif isinstance(event, SegmentsReady):
                self._segments(run, list(event.segments))
            elif isinstance(event, TimingReport):
                timings = dict(event.timings)
                (run.job_timings if event.chunk_index is None else run.chunk_timings).append(timings)
                count = timings.get("chunk_count") or run.chunk_count
                self._log_timings(run, timings, event.chunk_index, count)
            elif isinstance(event, JobNote):
                self._log(run.job_id, run.record.name, event.text)

    def _segments(self, run: _Run, segments: list[Segment]) -> None:
        partial = self._partial.setdefault(run.job_id, [])
        partial.extend(segments)
        self._report(SegmentsArrived(run.job_id, segments))
        # segments carry their own progress: the audio covered so far (for backends with coarse Progress)
        duration = run.record.duration
        if segments and duration:
            covered = max(segment.end for segment in partial) / duration
            label = run.label if run.label.startswith(Stage.TRANSCRIBING.value) else Stage.TRANSCRIBING.value
            if covered * 0.99 > run.fraction:
                self._progress(run, covered * 0.99, label)

    def _progress(self, run: _Run, fraction: float, label: str) -> None:
        """The bar only moves forward; the ETA comes from the time so far and the fraction done."""
        fraction = max(run.fraction, min(1.0, max(0.0, fraction)))
        run.fraction, run.label = fraction, label
        elapsed = time.monotonic() - run.started_at
        eta = elapsed * (1.0 - fraction) / fraction if 0.02 < fraction < 1.0 else None
        self._report(JobProgress(run.job_id, fraction, label, eta))

    # --- endings -----------------------------------------------------------------------------------------

    def _succeeded(self, run: _Run, transcript: Transcript, notes: list[str]) -> None:
        with self._locked():
            if self._closed:
                return
            elapsed = time.monotonic() - run.started_at
            duration = float(transcript.duration) if run.record.duration is None and transcript.duration else None
            self.library.jobs.mark_ended(run.job_id, JobStatus.DONE, time.time(), elapsed, duration=duration)
            self._log_summary(run, transcript, elapsed)
            for line in notes:
                self._log(run.job_id, run.record.name, line)
            self._end(run, JobStatus.DONE, transcript=transcript)

    def _reused(self, run: _Run, earlier: JobRecord, transcript: Transcript, notes: list[str]) -> None:
        with self._locked():
            if self._closed:
                return
            duration = run.record.duration or earlier.duration or transcript.duration or None
            self.library.jobs.mark_ended(run.job_id, JobStatus.DONE, time.time(), time.monotonic() - run.started_at,
                                         duration=duration)
            self._write_log(TranscriptReused(run.job_id, _named(run.record.name, reuse_line(earlier)),
                                             earlier_job_id=earlier.id, earlier_path=earlier.path))
            for line in notes:
                self._log(run.job_id, run.record.name, line)
            self._end(run, JobStatus.DONE, transcript=transcript)

    def _reuse_lost(self, run: _Run) -> None:
        """The transcript to copy is gone (its job was removed): back in the queue, transcribed this time."""
        with self._locked():
            if self._runs.get(run.job_id) is run:
                del self._runs[run.job_id]
            if self._closed:
                return
            self.library.jobs.requeue(run.job_id)
            self.library.jobs.release(run.job_id, self.owner)
            self.schedule()

    def _cancelled(self, run: _Run) -> None:
        with self._locked():
            if self._closed:
                return
            if not run.requeued:  # shutdown put it back in the queue: it resumes at the next start
                self.library.jobs.mark_ended(run.job_id, JobStatus.CANCELLED, time.time(), time.monotonic() - run.started_at)
            self._end(run, JobStatus.CANCELLED)

    def _failed(self, run: _Run, failure: Failure) -> None:
        with self._locked():
            if self._closed:
                return
            self.library.jobs.mark_ended(run.job_id, JobStatus.FAILED, time.time(), time.monotonic() - run.started_at,
                                         error=failure.reason, error_detail=failure.detail or None)
            self._log_failure(run.job_id, run.record.name, failure.reason)
            if failure.needs_modal_setup:
                self._report(ModalSetupNeeded(failure.reason))
            self._end(run, JobStatus.FAILED, failure.reason)

    def _fail_queued(self, record: JobRecord, reason: str) -> None:
        """A queued job that cannot start (Modal not set up)."""
        self.library.jobs.mark_ended(record.id, JobStatus.FAILED, time.time(), error=reason)
        self._log_failure(record.id, record.name, reason)
        self._report(ModalSetupNeeded(reason))
        written = self._changed(record.id)
        self._report(JobFinished(record.id, JobStatus.FAILED, reason, written))

    def _end(self, run: _Run, status: JobStatus, error: str | None = None, transcript: Transcript | None = None) -> None:
        if self._runs.get(run.job_id) is run:
            del self._runs[run.job_id]
        if not run.ended.is_set():
            self._ending.append(run)
        self.library.jobs.release(run.job_id, self.owner)
        if run.remove_when_stopped:
            self._remove_now(run.job_id)
        else:
            written = self._changed(run.job_id)
            self._report(JobFinished(run.job_id, status, error, written, transcript))
        self.schedule()

    # --- the log: written, then reported (a job's lines start with its file's name) ------------------------

    def _write_log(self, line: LogLine) -> None:
        self.library.log.add(line.job_id, line.text)
        self._report(line)

    def _log(self, job_id: int | None, name: str | None, line: str) -> None:
        self._write_log(LogLine(job_id, _named(name, line)))

    def _log_failure(self, job_id: int, name: str, reason: str) -> None:
        self._write_log(FailureLine(job_id, _named(name, f"failed: {reason}"), reason=reason))

    def _log_timings(self, run: _Run, timings: dict[str, Any], chunk_index: int | None = None,
                     chunk_count: int | None = None) -> None:
        text = _named(run.record.name, timing_line(timings, chunk_index, chunk_count))
        self._write_log(TimingLine(run.job_id, text, timings=dict(timings), chunk_index=chunk_index,
                                   chunk_count=chunk_count))

    def _log_summary(self, run: _Run, transcript: Transcript, wall_s: float) -> None:
        """The job's one cost summary (worker.modal.cost.summarize over its chunks' timings)."""
        chunks = run.chunk_timings or run.job_timings
        if not chunks:
            chunks = list(transcript.timings.get("chunks") or []) or ([dict(transcript.timings)] if transcript.timings else [])
            for timings in chunks:  # the backend sent no timing events: log what the transcript carries
                self._log_timings(run, timings)
        summary = summarize(chunks, wall_s, self.preferences.dollars_per_gpu_hour).line()
        self._write_log(SummaryLine(run.job_id, _named(run.record.name, summary), summary=summary,
                                    model=transcript.model or run.record.options.model,
                                    backend=transcript.backend or run.record.backend))

    def _changed(self, job_id: int) -> JobRecord | None:
        """Report the job as written (JobChanged); returns it (None: it is gone)."""
        record = self.library.jobs.get(job_id)
        if record is not None:
            self._report(JobChanged(record))
        return record

    # --- queue actions (each takes several ids: multi-select) ----------------------------------------------

    def cancel(self, job_ids: Iterable[int]) -> None:
        with self._locked():
            for job_id in job_ids:
                run = self._runs.get(job_id)
                if run is not None:
                    run.cancel.cancel()  # the backend ends with Cancelled at its next check
                    continue
                if job_id in self._elsewhere:
                    self._report(Note(self._elsewhere[job_id].name + ELSEWHERE))
                    continue
                record = self.library.jobs.get(job_id)
                if record is not None and record.status == JobStatus.QUEUED:
                    self._stop_hashing(job_id)
                    self.library.jobs.mark_ended(job_id, JobStatus.CANCELLED, time.time())
                    written = self._changed(job_id)
                    self._report(JobFinished(job_id, JobStatus.CANCELLED, None, written))

    def retry(self, job_ids: Iterable[int]) -> None:
        """Run finished jobs again, really transcribed, even one whose recording a finished job had (the window's
        Retry and "Transcribe again"); each file is read again first, as it is now."""
        with self._locked():
            for job_id in job_ids:
                record = self.library.jobs.get(job_id)
                if record is None or job_id in self._runs or not JobStatus(record.status).finished:
                    continue
                self.library.jobs.requeue(job_id, transcribe_again=True)
                self._own.add(job_id)  # retried here: ours to run
                self._unhashable.discard(job_id)
                written = self._changed(job_id)
                if written is not None:
                    self._request_hash(written)
            self.schedule()

    def remove(self, job_ids: Iterable[int]) -> None:
        with self._locked():
            for job_id in list(job_ids):
                run = self._runs.get(job_id)
                if run is not None:
                    run.remove_when_stopped = True
                    run.cancel.cancel()
                elif job_id in self._elsewhere:
                    self._report(Note(self._elsewhere[job_id].name + ELSEWHERE))
                else:
                    self._remove_now(job_id)
            self.schedule()

    def _remove_now(self, job_id: int) -> None:
        self._stop_hashing(job_id)
        self._unhashable.discard(job_id)
        record = self.library.jobs.get(job_id)
        self.library.jobs.remove(job_id)
        if record is not None and record.owned_copy:
            remove_owned_copy(Path(record.path))
        self._partial.pop(job_id, None)
        self._report(JobRemoved(job_id))

    def set_backend(self, job_ids: Iterable[int], backend: str) -> None:
        with self._locked():
            for job_id in job_ids:
                record = self.library.jobs.get(job_id)
                if record is None or job_id in self._runs or record.backend == backend:
                    continue
                self.library.jobs.set_backend(job_id, backend)
                self._changed(job_id)

    def set_speakers(self, job_ids: Iterable[int], speakers: str | None) -> None:
        """Label speakers ("auto", a count, None: off) in the given jobs' next run (not a running one's)."""
        with self._locked():
            for job_id in job_ids:
                record = self.library.jobs.get(job_id)
                if record is None or job_id in self._runs or record.options.speakers == speakers:
                    continue
                self.library.jobs.set_options(job_id, replace(record.options, speakers=speakers))
                self._changed(job_id)

    def move(self, job_ids: Iterable[int], delta: int) -> None:
        """Move the given jobs one place up (delta -1) or down (+1), keeping their relative order."""
        with self._locked():
            selected = set(job_ids)
            order = [record.id for record in self.library.jobs.all()]
            if delta < 0:
                for i in range(1, len(order)):
                    if order[i] in selected and order[i - 1] not in selected:
                        self.library.jobs.move(order[i], order[i - 1])
                        order[i - 1], order[i] = order[i], order[i - 1]
            else:
                for i in range(len(order) - 2, -1, -1):
                    if order[i] in selected and order[i + 1] not in selected:
                        self.library.jobs.move(order[i + 1], order[i])
                        order[i], order[i + 1] = order[i + 1], order[i]
            self._report(JobsReordered(tuple(order)))
            self.schedule()

    # --- writes from outside a job: the editor, a review import, known voices, a region ----------------------

    def save_edit(self, job_id: int, transcript: Transcript, edited: bool = True) -> None:
        """An editor's change of a finished job's transcript, written (edited False: the text is back to the
        original, so the edit is dropped), then reported as TranscriptEdited with the transcript itself. In the
        caller's thread (the editor saves off the GUI thread)."""
        with self._locked():
            if edited:
                self.library.transcripts.save_edit(job_id, transcript)
            else:
                self.library.transcripts.revert_edit(job_id)
            self._report(TranscriptEdited(job_id, transcript, edited))

    def add_review_job(self, transcript: Transcript, audio: str | Path, subtitles: str | Path) -> JobRecord:
        """Subtitles imported for review (worker.jobs.review_import) as a finished job: JobAdded with its record,
        then its log line."""
        from worker.jobs.review_import import add_review_job, review_log_line

        with self._locked():
            job_id = add_review_job(self.library, transcript, audio, subtitles)
            record = self.library.jobs.get(job_id)
            assert record is not None, "the review job was just written"
            self._report(JobAdded(record))
            self._report(LogLine(job_id, review_log_line(transcript, subtitles)))
            return record

    def save_voice(self, name: str, embedding: Iterable[float]) -> int:
        """A speaker's voice saved to the library under `name` (averaged with earlier saves): VoiceSaved."""
        with self._locked():
            voice_id = int(self.library.voices.save(name, list(embedding)))
            self._report(VoiceSaved(voice_id, name))
            return voice_id

    def transcribe_region(self, path: str | Path, start_s: float, end_s: float, options: TranscriptionOptions,
                          backend: str | None = None, cancel: CancelToken | None = None,
                          job_id: int | None = None) -> list[Segment]:
        """[start_s, end_s) of `path` transcribed again (worker.jobs.region) on the pool's backend `backend` (the
        preferences' by default), configured as the preferences held here say, like any job. Blocks: call it off
        the GUI thread. The segments are on the file's clock; RegionTranscribed reports them."""
        from worker.backends.events import ignore_events
        from worker.jobs.region import transcribe_region

        if self._shutting_down:
            raise Cancelled()
        name = backend or self.preferences.backend
        with self.pool.lent(name) as engine:
            segments = transcribe_region(engine, path, start_s, end_s, options, ignore_events, cancel or CancelToken())
        with self._locked():
            if not self._closed:
                self._report(RegionTranscribed(job_id, start_s, end_s, segments))
        return segments

    # --- leases ------------------------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        if self._heartbeat_started:
            return
        self._heartbeat_started = True
        start_thread(self._heartbeat_loop)

    def _heartbeat_loop(self) -> None:
        """Renew the leases every heartbeat_s, follow the jobs others run; under a window, look for the jobs
        other processes added (every library_check_s)."""
        tick = min(self._heartbeat_s, self._library_check_s) if self._lists_library else self._heartbeat_s
        renew_at = time.monotonic() + self._heartbeat_s
        while not self._heartbeat_stop.wait(min(tick, FOLLOW_CHECK_S) if self._followed else tick):
            with self._locked():
                if self._closed:
                    return
                try:
                    if time.monotonic() + tick / 2 >= renew_at:
                        renew_at = time.monotonic() + self._heartbeat_s
                        if self._runs:
                            self.library.jobs.heartbeat(self.owner)
                    if self._followed:
                        self._check_followed()
                    if self._newest_listed is not None:
                        self._list_new_jobs()
                    if self._elsewhere:
                        self._check_elsewhere()
                except (sqlite3.Error, OSError) as exc:  # a full disk or a closed library: the jobs' writes say so
                    log.warning("the lease heartbeat could not be written: %s", exc)
                except Exception:  # a bug here must not end the heartbeat (the leases would lapse)
                    log.exception("the lease heartbeat failed")

    def _follow(self, job_id: int) -> None:
        """Watch one of our jobs that another process runs, until it ends (checked with the heartbeat)."""
        self._followed.add(job_id)
        self._start_heartbeat()

    def _check_followed(self) -> None:
        """Our jobs that another process runs: report their ending when it comes (the CLI waits for it); one
        put back in the queue is ours to run again."""
        for job_id in sorted(self._followed):
            record = self.library.jobs.get(job_id)
            if record is None:
                self._followed.discard(job_id)
                self._report(JobRemoved(job_id))
            elif record.status == JobStatus.QUEUED:
                self._followed.discard(job_id)
                self.schedule()
            elif JobStatus(record.status).finished:
                self._followed.discard(job_id)
                status = JobStatus(record.status)
                transcript = self.library.transcripts.get(job_id) if status == JobStatus.DONE else None
                self._report(JobChanged(record))
                self._report(JobFinished(job_id, status, record.error, record, transcript))

    def _list_new_jobs(self) -> None:
        """Jobs other processes added since the last look: JobAdded, then followed to their end."""
        assert self._newest_listed is not None
        for record in self.library.jobs.added_after(self._newest_listed):
            self._newest_listed = max(self._newest_listed, record.id)
            if record.id in self._listed or record.id in self._own:
                continue  # added here
            self._report(JobAdded(record))
            if not JobStatus(record.status).finished:
                self._elsewhere[record.id] = record
        self._listed = {job_id for job_id in self._listed if job_id > self._newest_listed}

    def _check_elsewhere(self) -> None:
        """Other processes' jobs: each change of their record (JobChanged), their ending with its transcript
        (JobFinished), or their removal."""
        now = {record.id: record for record in self.library.jobs.get_many(list(self._elsewhere))}
        for job_id, seen in list(self._elsewhere.items()):
            record = now.get(job_id)
            if record is None:
                del self._elsewhere[job_id]
                self._report(JobRemoved(job_id))
            elif JobStatus(record.status).finished:
                del self._elsewhere[job_id]
                transcript = self.library.transcripts.get(job_id) if record.status == JobStatus.DONE else None
                self._report(JobChanged(record))
                self._report(JobFinished(job_id, JobStatus(record.status), record.error, record, transcript))
            elif record != seen:
                self._elsewhere[job_id] = record
                self._report(JobChanged(record))

    # --- shutdown ----------------------------------------------------------------------------------------

    def shutdown(self, timeout_s: float = 10.0, requeue: bool = True) -> bool:
        """Stop everything. `requeue`: running jobs go back to the queue and are detached, not cancelled (a
        Modal job's calls run on and are collected at the next start); otherwise they end cancelled. Waits up
        to `timeout_s` for them; False if some did not stop in time (their threads are let go: nothing they do
        later reaches the library)."""
        with self._locked():
            self._shutting_down = True
            for job_id in list(self._hashing):
                self._stop_hashing(job_id)
            runs = list(self._runs.values())
            for run in runs:
                if requeue:
                    self.library.jobs.requeue(run.job_id)
                    run.requeued = True
                    run.cancel.detach()
                else:
                    run.cancel.cancel()
            runs += [run for run in self._ending if run not in runs]
        deadline = time.monotonic() + timeout_s / 2
        for run in runs:
            run.ended.wait(max(0.0, deadline - time.monotonic()))
        self.pool.close_all()  # also unblocks a backend that did not notice the cancel
        deadline = time.monotonic() + timeout_s / 2
        for run in runs:
            run.ended.wait(max(0.0, deadline - time.monotonic()))
        stopped = all(run.ended.is_set() for run in runs)
        self.scanner.stop()  # a scan stuck on a dead share is let go
        self.prober.stop()
        self.hasher.stop()
        self._heartbeat_stop.set()
        with self._locked():
            for run in runs:
                if not run.ended.is_set() and self._runs.get(run.job_id) is run:
                    self.library.jobs.release(run.job_id, self.owner)
            self._closed = True
        return stopped

"""Watch folders: every media file that lands in a watched folder is transcribed once, and its outputs written.

A polling scan (portable: local disks, network shares and removable drives alike). A file is queued once its
size and modification time have not changed for SETTLE_S (a copy or a download still going on keeps moving
them), through the one job queue (worker.queue.JobQueue). Partial downloads, temporary files, hidden files
and files that are not media are left alone, each reported once in one line.

Each file is remembered in the library (watched_files: path, size, mtime, job, state), so it is transcribed
once across restarts, including a file that arrived while nothing was watching. A file whose size or time
changes after it was transcribed is new content, and is transcribed again. When its job is done the
transcript (the edited one, if it was edited) is written in the folder's formats, each file atomically.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TextIO

from worker.audio import is_media_path
from worker.errors import one_line
from worker.interrupts import CtrlC
from worker.job_status import JobStatus
from worker.options import DEFAULT_MODEL, MODEL_NAMES, TranscriptionOptions
from worker.subtitles import RULE_FORMATS

if TYPE_CHECKING:
    from worker.library import Library
    from worker.queue import JobQueue

SETTLE_S = 5.0  # a file is ready once its size and time have not changed for this long
POLL_S = 1.0  # seconds between scans
DEFAULT_FORMATS = ("txt",)
WATCH_BACKENDS = ("local", "modal")
PARTIAL_DOWNLOAD_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".opdownload", ".!qb", ".!ut")
TEMPORARY_SUFFIXES = (".tmp", ".temp", ".swp", ".bak", "~")
STOP_TIMEOUT_S = 15.0  # Ctrl-C: how long running jobs get to stop
CLAIM_STALE_S = 60.0  # a claim not followed by its job within this long was left by a watcher that stopped
MAX_IGNORED_LINES = 5  # more files ignored in one round than this are reported in one line

Report = Callable[[str], None]


class WatchState(str, Enum):
    """What became of a watched file (watched_files.state)."""

    CLAIMED = "claimed"  # a watcher is queueing it (two watchers on one library never both queue a file)
    QUEUED = "queued"  # its job is queued or running
    DONE = "done"  # transcribed; outputs written
    FAILED = "failed"  # the job failed (bad media, ...): not tried again unless the file changes
    CANCELLED = "cancelled"  # cancelled by the user: not tried again unless the file changes
    REMOVED = "removed"  # its job was removed from the queue: not tried again unless the file changes

    def __str__(self) -> str:
        return self.value


SINCE = {WatchState.QUEUED: "it was queued", WatchState.DONE: "it was transcribed", WatchState.FAILED: "it failed",
         WatchState.CANCELLED: "it was cancelled", WatchState.REMOVED: "its job was removed"}


@dataclass(frozen=True)
class WatchFolder:
    """One watched folder and what its files become."""

    folder: str
    backend: str = "local"
    model: str = DEFAULT_MODEL
    formats: tuple[str, ...] = DEFAULT_FORMATS
    output_dir: str = ""  # "" writes next to each file

    def problem(self) -> str | None:
        """Why these settings cannot be used (one line), or None."""
        from worker.formats import FORMAT_LABELS

        if not self.folder:
            return "no folder chosen"
        if self.backend not in WATCH_BACKENDS:
            return f"unknown backend {self.backend!r}; choose local or modal"
        if self.model not in MODEL_NAMES:
            return f"unknown model {self.model!r}"
        unknown = [fmt for fmt in self.formats if fmt not in FORMAT_LABELS]
        if unknown:
            return f"unknown output format {unknown[0]!r}; choose from {', '.join(FORMAT_LABELS)}"
        if not self.formats:
            return "choose at least one output format"
        return None

    def output_folder(self, source: Path) -> Path:
        return Path(self.output_dir).expanduser() if self.output_dir else source.parent

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "backend": self.backend, "model": self.model, "formats": list(self.formats),
                "output_dir": self.output_dir}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WatchFolder":
        """A stored entry; unknown or damaged values fall back to the defaults."""
        defaults = cls(folder="")
        formats = data.get("formats")
        entry = cls(
            folder=str(data.get("folder") or ""),
            backend=str(data.get("backend") or defaults.backend),
            model=str(data.get("model") or defaults.model),
            formats=tuple(str(f).lower() for f in formats) if isinstance(formats, (list, tuple)) else defaults.formats,
            output_dir=str(data.get("output_dir") or ""),
        )
        fixes: dict[str, Any] = {}
        if entry.backend not in WATCH_BACKENDS:
            fixes["backend"] = defaults.backend
        if entry.model not in MODEL_NAMES:
            fixes["model"] = defaults.model
        if replace(entry, **fixes).problem() not in (None, "no folder chosen"):
            fixes["formats"] = defaults.formats
        return replace(entry, **fixes)


def parse_watch_folders(raw: Any) -> tuple[WatchFolder, ...]:
    """Preferences' watch_folders from JSON: entries without a folder are dropped."""
    if not isinstance(raw, (list, tuple)):
        return ()
    entries = (WatchFolder.from_dict(item) if isinstance(item, dict) else item for item in raw)
    return tuple(entry for entry in entries if isinstance(entry, WatchFolder) and entry.folder)


def ignore_reason(path: Path) -> str | None:
    """Why a file in a watched folder is not transcribed (one line), or None for a media file to watch."""
    name = path.name
    lower = name.lower()
    if name.startswith("."):
        return "a hidden file"
    if lower.endswith(PARTIAL_DOWNLOAD_SUFFIXES):
        return "a partial download (waiting for the finished file)"
    if lower.endswith(TEMPORARY_SUFFIXES) or name.startswith("~"):
        return "a temporary file"
    if not is_media_path(path):
        return "not a media file"
    return None


@dataclass
class _Observation:
    size: int
    mtime: float
    stable_since: float  # clock time when (size, mtime) last changed


class SettleTracker:
    """Decides when a file has stopped changing: same size and time for `settle_s` of the clock."""

    def __init__(self, settle_s: float = SETTLE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.settle_s = settle_s
        self.clock = clock
        self._seen: dict[Path, _Observation] = {}

    def observe(self, path: Path, size: int, mtime: float) -> bool:
        """Record what a scan saw; True when the file is ready (unchanged for settle_s, and not empty)."""
        now = self.clock()
        seen = self._seen.get(path)
        if seen is None or (seen.size, seen.mtime) != (size, mtime):
            self._seen[path] = _Observation(size, mtime, now)
            return False
        return size > 0 and now - seen.stable_since >= self.settle_s

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)

    def keep_only(self, paths: set[Path]) -> None:
        """Drop files that are gone (deleted or renamed) since the last scan."""
        for path in [p for p in self._seen if p not in paths]:
            del self._seen[path]


@dataclass(frozen=True)
class FileSeen:
    path: Path
    size: int
    mtime: float


def scan_folder(folder: Path, skip: set[Path]) -> tuple[list[FileSeen], list[tuple[Path, str]]]:
    """Files under `folder` (recursively; hidden folders and those in `skip` left out): media files with their
    size and time, and the other files with the reason they are ignored. Unreadable entries are skipped."""
    media: list[FileSeen] = []
    ignored: list[tuple[Path, str]] = []
    for entry in _walk(folder, skip):
        path = Path(entry.path)
        if entry.name.startswith("."):
            continue  # hidden: the system's, or a program's temporary file (our own atomic writes too)
        reason = ignore_reason(path)
        if reason is not None:
            ignored.append((path, reason))
            continue
        try:
            stat = entry.stat()
        except OSError:
            continue  # gone between the listing and the stat (renamed at the end of a download)
        media.append(FileSeen(path, stat.st_size, stat.st_mtime))
    return media, ignored


def _walk(folder: Path, skip: set[Path]) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            listing = sorted(entries, key=lambda e: e.name)
    except OSError:
        return
    for entry in listing:
        try:
            if entry.is_dir(follow_symlinks=False):
                if not entry.name.startswith(".") and Path(entry.path) not in skip:
                    yield from _walk(Path(entry.path), skip)
            elif entry.is_file():
                yield entry
        except OSError:
            continue


def _readable(path: Path) -> bool:
    """A file another program still holds exclusively (Windows, while copying) cannot be opened yet."""
    try:
        with open(path, "rb") as handle:
            handle.read(1)
        return True
    except OSError:
        return False


class FolderWatcher:
    """Scans the watched folders, queues ready files in `queue`, and writes the outputs of finished jobs.

    `poll()` does one round; `run(stop)` polls until `stop` is set (call it from a worker thread, never the
    GUI thread). Everything it has to say goes to `report`, one line each."""

    def __init__(self, library: Library, queue: JobQueue, folders: list[WatchFolder], report: Report,
                 settle_s: float = SETTLE_S, base_options: TranscriptionOptions | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.library = library
        self.queue = queue
        self.report = report
        self.base_options = base_options or TranscriptionOptions()
        self.tracker = SettleTracker(settle_s, clock)
        self.folders: list[WatchFolder] = []  # the folders being watched (checked, resolved)
        self._told: set[tuple[Path, str]] = set()  # (file, line) already reported this session
        self._outputs: set[Path] = set()  # files this watcher wrote (not reported as ignored)
        self._scanned: set[Path] = set()  # folders scanned at least once
        self._lock = threading.Lock()  # one round at a time
        self._pending_lock = threading.Lock()
        self._pending: tuple[list[WatchFolder], TranscriptionOptions] | None = None
        self.set_folders(folders)

    def set_folders(self, folders: list[WatchFolder], base_options: TranscriptionOptions | None = None) -> None:
        """Watch these folders from the next round on (checked there, in the watcher's thread)."""
        with self._pending_lock:
            self._pending = (list(folders), base_options or self.base_options)

    def _apply_folders(self) -> None:
        with self._pending_lock:
            pending, self._pending = self._pending, None
        if pending is None:
            return
        folders, self.base_options = pending
        usable = []
        for entry in folders:
            problem = entry.problem()
            if problem is None and not Path(entry.folder).expanduser().is_dir():
                problem = "no such folder"
            if problem is not None:
                self._tell(Path(entry.folder), f"not watched: {problem}")
            else:
                usable.append(replace(entry, folder=str(Path(entry.folder).expanduser().resolve())))
        self.folders = usable

    # --- one round ---------------------------------------------------------------------------------------

    def poll(self) -> None:
        """Scan every folder once and finish what the queue has done since the last round."""
        with self._lock:
            self._apply_folders()
            folders = list(self.folders)
            present: set[Path] = set()
            roots = {Path(entry.folder) for entry in folders}
            for entry in folders:
                root = Path(entry.folder)
                skip = {other for other in roots if other != root}
                if entry.output_dir:
                    skip.add(Path(entry.output_dir).expanduser().resolve())
                if not root.is_dir():
                    self._tell(root, "cannot be read now (moved, or a drive that is not mounted?)")
                    continue
                media, ignored = scan_folder(root, skip)
                self._tell_ignored(root, [(path, reason) for path, reason in ignored if path not in self._outputs])
                known = 0
                for seen in media:
                    present.add(seen.path)
                    known += self._consider(entry, seen)
                if root not in self._scanned:  # the first round: say what was found
                    self._scanned.add(root)
                    self.report(f"{root.name}: {_files(known)} seen before, {len(media) - known} new")
            self.tracker.keep_only(present)
            self._finish_jobs(folders)

    def _consider(self, entry: WatchFolder, seen: FileSeen) -> bool:
        """Queue the file if it is new (or changed) and ready. True when it is known as it is now."""
        row = self.library.watched_file(seen.path)
        if row is not None and (row["size"], row["mtime"]) == (seen.size, seen.mtime) and not _stale_claim(row):
            return True  # already queued or transcribed as it is now (or being queued by another watcher)
        if not self.tracker.observe(seen.path, seen.size, seen.mtime) or not _readable(seen.path):
            return False
        self.tracker.forget(seen.path)
        if row is not None and row["state"] == WatchState.QUEUED and self._job_waits(row["job_id"]):
            # changed before its job started: that job reads the file as it is now
            self.library.set_watched_file(seen.path, seen.size, seen.mtime, row["job_id"], WatchState.QUEUED)
            return False
        if not self.library.claim_watched_file(seen.path, seen.size, seen.mtime, WatchState.CLAIMED, CLAIM_STALE_S):
            return False  # another watcher on this library took it first
        changed = row is not None and row["state"] != WatchState.CLAIMED
        if row is not None and changed:
            since = SINCE.get(row["state"], "it was seen")
            self.report(f"{seen.path.name}: changed since {since}: transcribing it again")
        job_id = None if changed else self._existing_job(seen.path)
        if job_id is None:
            self.report(f"{seen.path.name}: queued ({entry.backend}, {entry.model})")
            # this folder's subtitles are cut at words, as the window's automatic export is
            word_timestamps = self.base_options.word_timestamps or any(f in RULE_FORMATS for f in entry.formats)
            options = replace(self.base_options, model=entry.model, word_timestamps=word_timestamps)
            [record] = self.queue.add_files([seen.path], backend=entry.backend, options=options)
            job_id = record.id
        else:
            self.report(f"{seen.path.name}: already in the queue; its transcript will be written when it is done")
            self.queue.adopt([job_id])  # a queue that runs only its own jobs runs this one too
        self.library.set_watched_file(seen.path, seen.size, seen.mtime, job_id, WatchState.QUEUED)
        return False

    def _job_waits(self, job_id: int | None) -> bool:
        record = self.library.job(job_id) if job_id is not None else None
        return record is not None and record.status == JobStatus.QUEUED

    def _existing_job(self, path: Path) -> int | None:
        """A job for this very file that is queued, running or done (a drop, or a watcher stopped between
        queueing the file and writing it down): it is used instead of transcribing the file twice."""
        for record in self.library.jobs():
            if record.path == str(path) and record.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE):
                return record.id
        return None

    # --- endings -----------------------------------------------------------------------------------------

    def _finish_jobs(self, folders: list[WatchFolder]) -> None:
        for row in self.library.watched_files(WatchState.QUEUED):
            path = Path(row["path"])
            entry = _folder_of(path, folders)
            if entry is None:
                continue  # a folder no longer watched: finished when it is watched again
            record = self.library.job(row["job_id"]) if row["job_id"] is not None else None
            if record is None:
                self._set_state(row, WatchState.REMOVED)
                self.report(f"{path.name}: removed from the queue; not transcribed")
            elif record.status == JobStatus.DONE:
                self._write_outputs(entry, path, record.id)
                self._set_state(row, WatchState.DONE)
            elif record.status == JobStatus.FAILED:
                self._set_state(row, WatchState.FAILED)
                self.report(f"{path.name}: failed: {record.error or 'unknown error'}")
            elif record.status == JobStatus.CANCELLED:
                self._set_state(row, WatchState.CANCELLED)
                self.report(f"{path.name}: cancelled; not transcribed")

    def _write_outputs(self, entry: WatchFolder, source: Path, job_id: int) -> None:
        from worker.formats import auto_export

        transcript = self.library.transcript(job_id)
        if transcript is None:
            self.report(f"{source.name}: done, but its transcript is missing from the library")
            return
        for fmt in entry.formats:
            try:
                rules = self.queue.preferences.subtitle_rules()
                for written in auto_export(transcript, source, [fmt], entry.output_folder(source), rules=rules):
                    self._outputs.add(written)
                    self.report(f"{source.name}: wrote {written}")
            except Exception as exc:  # one format that cannot be written never stops the others or the watcher
                self.report(f"{source.name}: could not write {fmt.upper()}: {one_line(str(exc))}")

    def _set_state(self, row: Any, state: WatchState) -> None:
        self.library.set_watched_file(row["path"], row["size"], row["mtime"], row["job_id"], state)

    # --- helpers -----------------------------------------------------------------------------------------

    def _tell_ignored(self, root: Path, ignored: list[tuple[Path, str]]) -> None:
        """A line for each file left alone, once; many new ones at a time (a first scan) in one line."""
        new = [(path, f"ignored: {reason}") for path, reason in ignored if (path, f"ignored: {reason}") not in self._told]
        if len(new) <= MAX_IGNORED_LINES:
            for path, line in new:
                self._tell(path, line)
            return
        self._told.update(new)
        examples = ", ".join(path.name for path, _line in new[:MAX_IGNORED_LINES])
        self.report(f"{root.name}: ignored {len(new)} files that are not media or not finished ({examples}, …)")

    def _tell(self, path: Path, line: str) -> None:
        if (path, line) not in self._told:
            self._told.add((path, line))
            self.report(f"{path.name}: {line}" if path.name else line)

    def run(self, stop: threading.Event, poll_s: float = POLL_S) -> None:
        """Poll until `stop` is set. A round that fails (a share that went away, a full disk) is reported
        in one line and the next round tries again."""
        last_problem = ""
        while not stop.is_set():
            try:
                self.poll()
                last_problem = ""
            except Exception as exc:
                problem = one_line(f"watch folders: {type(exc).__name__}: {exc}")
                if problem != last_problem:
                    self.report(problem)
                last_problem = problem
            stop.wait(poll_s)


def exports_itself(library: Library, job_id: int, path: str | Path) -> bool:
    """True when a watch folder is taking this job's file (claimed, or queued as this very job): its outputs
    are that folder's only, so the queue's automatic export (Preferences) leaves it alone (never written twice)."""
    row = library.watched_file(path)
    if row is None:
        return False
    if row["state"] == WatchState.CLAIMED:
        return not _stale_claim(row)
    return row["state"] == WatchState.QUEUED and row["job_id"] == job_id


def _files(count: int) -> str:
    return f"{count} media file{'' if count == 1 else 's'}"


def _stale_claim(row: Any) -> bool:
    return row["state"] == WatchState.CLAIMED and row["updated"] < time.time() - CLAIM_STALE_S


def _folder_of(path: Path, folders: list[WatchFolder]) -> WatchFolder | None:
    """The watched folder a file belongs to (the deepest, when folders are nested)."""
    owners = [entry for entry in folders if path.is_relative_to(entry.folder)]
    return max(owners, key=lambda entry: len(Path(entry.folder).parts), default=None)


@dataclass
class WatchService:
    """A FolderWatcher polling in its own thread (the window's and the CLI's way to run one)."""

    watcher: FolderWatcher
    poll_s: float = POLL_S
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self.watcher.run, args=(self.stop_event, self.poll_s),
                                       name="whisper-desk-watch", daemon=True)
        self.thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join(timeout_s)
            return not self.thread.is_alive()
        return True


def watch_command(entry: WatchFolder, library_path: Path | None, settle_s: float, err: TextIO,
                  poll_s: float = POLL_S) -> int:
    """`whisper-desk watch`: watch one folder until Ctrl-C (exit 130, running jobs resume at the next start)."""
    import signal

    from worker.cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
    from worker.library import Library, default_library_path
    from worker.preferences import Preferences
    from worker.queue import JobQueue, JobStarted, LogLine, Note, QueueEvent

    def say(line: str) -> None:
        print(line, file=err, flush=True)

    problem = entry.problem() or (None if Path(entry.folder).expanduser().is_dir() else "no such folder")
    if problem is not None:
        say(f"whisper-desk watch: {entry.folder}: {problem}")
        return EXIT_USAGE

    def on_queue_event(event: QueueEvent) -> None:
        if isinstance(event, JobStarted):
            record = library.job(event.job_id)
            say(f"{record.name if record else event.job_id}: transcribing")
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
        queue.adopt(row["job_id"] for row in library.watched_files(WatchState.QUEUED)
                    if row["job_id"] is not None and Path(row["path"]).is_relative_to(folder))
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

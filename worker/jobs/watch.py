"""Watch folders: every media file that lands in a watched folder is transcribed once, and its outputs written.

A polling scan (portable: local disks, network shares and removable drives alike). A file is queued once its
size and modification time have not changed for SETTLE_S (a copy or a download still going on keeps moving
them), through the one job queue (worker.jobs.queue.JobQueue). Partial downloads, temporary files, hidden files
and files that are not media are left alone, each reported once in one line.

Each file is remembered in the library (watched_files: path, size, mtime, job, state), so it is transcribed
once across restarts, including a file that arrived while nothing was watching. A file whose size or time
changes after it was transcribed is new content, and is transcribed again. When its job is done the
transcript (the edited one, if it was edited) is written in the folder's formats, each file atomically.

The files a folder already holds when it is added are transcribed too, unless its setting says to skip them
(WatchFolder.existing; the window asks, with their count and, for Modal, the estimated cost: survey_folder).
Skipped files are remembered as seen, at the folder's first scan after that addition, and never queued.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from worker.core.cancel import CancelToken
from worker.core.errors import one_line
from worker.core.options import TranscriptionOptions
from worker.jobs.watch_folders import CLAIM_STALE_S, ExistingFiles, WatchFolder, WatchState, stale_claim
from worker.library.job_status import JobStatus
from worker.media.audio import is_media_path
from worker.transcripts.formats import word_timestamps_needed

if TYPE_CHECKING:
    from worker.jobs.preferences import Preferences
    from worker.jobs.queue import JobQueue
    from worker.library.library import Library
    from worker.library.watched_files import WatchedFile

SETTLE_S = 5.0  # a file is ready once its size and time have not changed for this long
POLL_S = 1.0  # seconds between scans
PARTIAL_DOWNLOAD_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".opdownload", ".!qb", ".!ut")
TEMPORARY_SUFFIXES = (".tmp", ".temp", ".swp", ".bak", "~")
STOP_TIMEOUT_S = 15.0  # Ctrl-C: how long running jobs get to stop
MAX_IGNORED_LINES = 5  # more files ignored in one round than this are reported in one line

Report = Callable[[str], None]



SINCE = {WatchState.QUEUED: "it was queued", WatchState.DONE: "it was transcribed", WatchState.FAILED: "it failed",
         WatchState.CANCELLED: "it was cancelled", WatchState.REMOVED: "its job was removed",
         WatchState.SKIPPED: "it was skipped (it was there when the folder was added)"}



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
        self._skips_done: set[tuple[Path, float]] = set()  # (folder, addition) whose existing files were skipped
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
                skipped = self._skip_existing(entry, media)
                known = 0
                for seen in media:
                    present.add(seen.path)
                    known += self._consider(entry, seen)
                if skipped is not None:
                    self.report(f"{root.name}: {_files(skipped)} already there, skipped: only files that arrive "
                                "from now on are transcribed")
                elif root not in self._scanned:  # the first round: say what was found
                    self.report(f"{root.name}: {_files(known)} seen before, {len(media) - known} new")
                self._scanned.add(root)
            self.tracker.keep_only(present)
            self._finish_jobs(folders)

    def _skip_existing(self, entry: WatchFolder, media: list[FileSeen]) -> int | None:
        """The folder's first scan after it was added with its existing files to skip: each media file not
        known yet (or changed since it was done with) is noted as skipped, never to be queued. Returns how many,
        or None when this is not that scan."""
        root = Path(entry.folder)
        if entry.existing != ExistingFiles.SKIP or (root, entry.added) in self._skips_done:
            return None
        if self.library.watched_files.existing_skipped_for(root) == entry.added:
            self._skips_done.add((root, entry.added))
            return None
        skipped = 0
        for seen in media:
            row = self.library.watched_files.get(seen.path)
            if row is None or ((row.size, row.mtime) != (seen.size, seen.mtime)
                               and row.state not in (WatchState.CLAIMED, WatchState.QUEUED)):
                self.library.watched_files.set(seen.path, seen.size, seen.mtime, None, WatchState.SKIPPED)
                skipped += 1
        self.library.watched_files.note_existing_skipped(root, entry.added)
        self._skips_done.add((root, entry.added))
        return skipped

    def _consider(self, entry: WatchFolder, seen: FileSeen) -> bool:
        """Queue the file if it is new (or changed) and ready. True when it is known as it is now."""
        row = self.library.watched_files.get(seen.path)
        if row is not None and (row.size, row.mtime) == (seen.size, seen.mtime) and not stale_claim(row):
            return True  # already queued or transcribed as it is now (or being queued by another watcher)
        if not self.tracker.observe(seen.path, seen.size, seen.mtime) or not _readable(seen.path):
            return False
        self.tracker.forget(seen.path)
        if row is not None and row.state == WatchState.QUEUED and self._job_waits(row.job_id):
            # changed before its job started: that job reads the file as it is now
            self.library.watched_files.set(seen.path, seen.size, seen.mtime, row.job_id, WatchState.QUEUED)
            return False
        if not self.library.watched_files.claim(seen.path, seen.size, seen.mtime, WatchState.CLAIMED, CLAIM_STALE_S):
            return False  # another watcher on this library took it first
        changed = row is not None and row.state != WatchState.CLAIMED
        if row is not None and changed:
            since = SINCE.get(WatchState(row.state), "it was seen")
            self.report(f"{seen.path.name}: changed since {since}: transcribing it again")
        job_id = None if changed else self._existing_job(seen.path)
        if job_id is None:
            self.report(f"{seen.path.name}: queued ({entry.backend}, {entry.model})")
            # this folder's subtitles and JSON are made from words, as the window's automatic export's are
            word_timestamps = self.base_options.word_timestamps or word_timestamps_needed(entry.formats)
            options = replace(self.base_options, model=entry.model, word_timestamps=word_timestamps)
            [record] = self.queue.add_files([seen.path], backend=entry.backend, options=options)
            job_id = record.id
        else:
            self.report(f"{seen.path.name}: already in the queue; its transcript will be written when it is done")
            self.queue.adopt([job_id])  # a queue that runs only its own jobs runs this one too
        self.library.watched_files.set(seen.path, seen.size, seen.mtime, job_id, WatchState.QUEUED)
        return False

    def _job_waits(self, job_id: int | None) -> bool:
        record = self.library.jobs.get(job_id) if job_id is not None else None
        return record is not None and record.status == JobStatus.QUEUED

    def _existing_job(self, path: Path) -> int | None:
        """A job for this very file that is queued, running or done (a drop, or a watcher stopped between
        queueing the file and writing it down): it is used instead of transcribing the file twice."""
        for record in self.library.jobs.all():
            if record.path == str(path) and record.status in (JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.DONE):
                return record.id
        return None

    # --- endings -----------------------------------------------------------------------------------------

    def _finish_jobs(self, folders: list[WatchFolder]) -> None:
        for row in self.library.watched_files.all(WatchState.QUEUED):
            path = Path(row.path)
            entry = _folder_of(path, folders)
            if entry is None:
                continue  # a folder no longer watched: finished when it is watched again
            record = self.library.jobs.get(row.job_id) if row.job_id is not None else None
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
        """The folder's formats through the one export pipeline (worker.jobs.export), as automatic export writes
        them; one format that cannot be written never stops the others or the watcher."""
        from worker.jobs.export import export_beside

        transcript = self.library.transcripts.get(job_id)
        if transcript is None:
            self.report(f"{source.name}: done, but its transcript is missing from the library")
            return
        outcomes, notes = export_beside(transcript, source, entry.formats, entry.output_folder(source),
                                        self.queue.preferences.subtitle_rules())
        for outcome in outcomes:
            if outcome.path is not None:
                self._outputs.add(outcome.path)
                self.report(f"{source.name}: wrote {outcome.path}")
            else:
                self.report(f"{source.name}: could not write {outcome.fmt.upper()}: {outcome.problem}")
        for note in notes:
            self.report(note)

    def _set_state(self, row: WatchedFile, state: WatchState) -> None:
        self.library.watched_files.set(row.path, row.size, row.mtime, row.job_id, state)

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



def _files(count: int) -> str:
    return f"{count} media file{'' if count == 1 else 's'}"



def _folder_of(path: Path, folders: list[WatchFolder]) -> WatchFolder | None:
    """The watched folder a file belongs to (the deepest, when folders are nested)."""
    owners = [entry for entry in folders if path.is_relative_to(entry.folder)]
    return max(owners, key=lambda entry: len(Path(entry.folder).parts), default=None)


@dataclass(frozen=True)
class FolderSurvey:
    """The media files a folder already holds: what adding it as a watch folder would transcribe."""

    folder: Path
    files: int
    seconds: float  # their length, as far as it could be read (0.0 when not measured)
    usd: tuple[float, float] | None = None  # on Modal: the estimated cost, low to high; None: not on Modal

    def line(self) -> str:
        """e.g. "3 media files (4.2 min; on Modal about $0.0120–$0.0310)"."""
        details = []
        if self.seconds > 0:
            details.append(f"{self.seconds / 60:.1f} min")
        if self.usd is not None:
            details.append(f"on Modal about ${self.usd[0]:.4f}–${self.usd[1]:.4f}")
        return _files(self.files) + (f" ({'; '.join(details)})" if details else "")


def survey_folder(folder: str | Path, backend: str, model: str, preferences: Preferences,
                  cancel: CancelToken | None = None) -> FolderSurvey:
    """The media files `folder` holds (as the watcher would see them); on Modal (`backend`), their length and
    the estimated cost of transcribing them with `model` (worker.modal.cost.estimate_modal_cost, per file, with
    the preferences' price, chunk length and containers). Reads every file's headers on Modal: call it off the
    GUI thread. Cancelled between files."""
    from worker.core.errors import MediaError
    from worker.media.audio import probe_duration

    root = Path(folder).expanduser().resolve()
    media, _ignored = scan_folder(root, set())
    if backend != "modal":
        return FolderSurvey(root, len(media), 0.0)
    from worker.modal.cost import estimate_modal_cost

    seconds, low, high = 0.0, 0.0, 0.0
    for seen in media:
        if cancel is not None:
            cancel.raise_if_cancelled()
        try:
            duration = probe_duration(seen.path)
        except (MediaError, OSError):
            continue  # not counted in the estimate; its job would say why it cannot be read
        estimate = estimate_modal_cost(duration, model, dollars_per_hour=preferences.dollars_per_gpu_hour,
                                       chunk_s=preferences.chunk_s, max_containers=preferences.max_containers)
        seconds, low, high = seconds + duration, low + estimate.usd_low, high + estimate.usd_high
    return FolderSurvey(root, len(media), seconds, (low, high))


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



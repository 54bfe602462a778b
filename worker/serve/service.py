"""The server's side of the one job queue: each request's upload becomes a job of the library the window shares,
run by worker.jobs.queue.JobQueue on the preferences' backend (this computer, or the deployed Modal app) and as
many at once as the preferences allow; the request waits for its own job's end. A request that is given up (the
client went away, or its time ran out) cancels its job. Preferences saved by the window apply from the next
request on."""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Callable

from worker.core.errors import MediaError
from worker.core.options import TranscriptionOptions
from worker.jobs.preferences import Preferences
from worker.jobs.backend_pool import BackendFactory
from worker.jobs.events import JobFinished, JobStarted, LogLine, Note, QueueEvent
from worker.jobs.queue import JobQueue, remove_owned_copy
from worker.library.job_status import JobStatus
from worker.library.library import Library
from worker.serve.protocol import ApiError


UPLOADS_FOLDER = "uploads"  # under the app's data folder: the jobs' audio, kept so the window can play it
STOP_TIMEOUT_S = 15.0  # at shutdown: how long running jobs get to stop
MAX_NAME_BYTES = 200  # an upload's file name in UTF-8 (file systems allow 255)
MAX_SUFFIX_CHARS = 16


def default_uploads_folder() -> Path:
    from platformdirs import user_data_dir

    from worker.core.constants import APP_DIRS_NAME

    return Path(user_data_dir(APP_DIRS_NAME, appauthor=False)) / UPLOADS_FOLDER


def upload_name(raw: str | None) -> str:
    """The client's file name as a safe file name: no folders (a name like "../x" never leaves the upload's
    folder), no control characters, at most MAX_NAME_BYTES in UTF-8 (the stem is shortened, the suffix kept)."""
    name = "".join(ch for ch in Path((raw or "").replace("\\", "/")).name if ch.isprintable()).strip()
    if name in ("", ".", ".."):
        return "upload"
    suffix = Path(name).suffix if len(Path(name).suffix) <= MAX_SUFFIX_CHARS else ""
    stem = name[: len(name) - len(suffix)]
    while len(f"{stem}{suffix}".encode()) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return f"{stem or 'upload'}{suffix}"


class TranscriptionService:
    """Jobs for requests: `new_upload` gives each its own folder, `check_media` refuses what cannot be decoded,
    `transcribe` queues the job and waits for its end (its own, whatever happens to other requests' jobs)."""

    def __init__(self, library: Library, preferences: Preferences, say: Callable[[str], None], *,
                 uploads: Path | None = None, backend: str | None = None,
                 load_preferences: Callable[[], Preferences] = Preferences.load,
                 backend_factory: BackendFactory | None = None) -> None:
        self.library = library
        self.uploads = uploads or default_uploads_folder()
        self.backend = backend  # None: the preferences'
        self._say = say
        self._load_preferences = load_preferences
        self._lock = threading.Lock()
        self._waiters: dict[int, Callable[[JobFinished], None]] = {}
        self._ended: dict[int, JobFinished] = {}  # ended before their request started waiting
        # the server writes what the request asks for, nothing next to the upload
        self.queue = JobQueue(library, self._served(preferences), self._listen, only_own_jobs=True,
                              backend_factory=backend_factory)

    @staticmethod
    def _served(preferences: Preferences) -> Preferences:
        return replace(preferences, auto_export_formats=())

    def preferences(self) -> Preferences:
        """The stored preferences (the window may have changed them), held by the queue from now on."""
        latest = self._served(self._load_preferences())
        if latest != self.queue.preferences:
            self.queue.set_preferences(latest)
        return latest

    def new_upload(self, file_name: str | None) -> Path:
        """Where a request's file is written: a folder of its own under the uploads folder."""
        folder = self.uploads / uuid.uuid4().hex
        folder.mkdir(parents=True)
        return folder / upload_name(file_name)

    @staticmethod
    def discard_upload(path: Path) -> None:
        """An upload that never became a job (refused): its file and folder go."""
        remove_owned_copy(path)

    @staticmethod
    def check_media(path: Path) -> float:
        """The upload's duration; ApiError (400, naming the file) when it is not audio or video that decodes."""
        from worker.media.audio import probe_duration

        try:
            return probe_duration(path)
        except MediaError as exc:
            raise ApiError(400, f"{exc}; send an audio or video file", param="file", code="invalid_file") from None

    async def transcribe(self, path: Path, options: TranscriptionOptions) -> JobFinished:
        """Queue `path` as a job and wait for its end. Cancelling the wait (the client went away, the time ran
        out) cancels the job, queued or running."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[JobFinished] = loop.create_future()

        def deliver(event: JobFinished) -> None:  # from the queue's thread
            loop.call_soon_threadsafe(lambda: None if ended.done() else ended.set_result(event))

        adding = loop.run_in_executor(None, self._add, path, options, deliver)
        try:
            job_id = await asyncio.shield(adding)
        except asyncio.CancelledError:
            adding.add_done_callback(lambda done: self._cancel_added(loop, done))
            raise
        try:
            return await ended
        except asyncio.CancelledError:
            self._give_up(loop, job_id)
            raise

    def _add(self, path: Path, options: TranscriptionOptions, deliver: Callable[[JobFinished], None]) -> int:
        [record] = self.queue.add_files([path], self.backend, options, owned_copy=True)
        with self._lock:
            ending = self._ended.pop(record.id, None)
            if ending is None:
                self._waiters[record.id] = deliver
        if ending is not None:
            deliver(ending)
        return record.id

    def _cancel_added(self, loop: asyncio.AbstractEventLoop, adding: asyncio.Future[int]) -> None:
        if not adding.cancelled() and adding.exception() is None:
            self._give_up(loop, adding.result())

    def _give_up(self, loop: asyncio.AbstractEventLoop, job_id: int) -> None:
        with self._lock:
            self._waiters.pop(job_id, None)
            self._ended.pop(job_id, None)
        loop.run_in_executor(None, self.queue.cancel, [job_id])

    def _listen(self, event: QueueEvent) -> None:
        """The queue's reports (its threads): a job's end goes to its request; starts, log lines and notes to
        the terminal."""
        if isinstance(event, JobFinished):
            with self._lock:
                waiter = self._waiters.pop(event.job_id, None)
                if waiter is None:
                    self._ended[event.job_id] = event
            if waiter is not None:
                waiter(event)
            if event.status == JobStatus.CANCELLED:
                name = event.record.name if event.record else event.job_id
                self._say(f"{name}: cancelled")
        elif isinstance(event, JobStarted):
            self._say(f"{event.record.name if event.record else event.job_id}: transcribing")
        elif isinstance(event, (LogLine, Note)):
            self._say(event.text)

    def close(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Cancel what still runs (the requests are gone with the server) and wait, bounded, for it to stop."""
        self.queue.shutdown(timeout_s=timeout_s, requeue=False)


__all__ = ["STOP_TIMEOUT_S", "TranscriptionService", "default_uploads_folder", "upload_name"]

"""The window's watch folders: worker.jobs.watch.FolderWatcher polling in its own thread, its lines delivered to the
GUI thread as a queued Qt signal. Files are queued in the window's own job queue."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt, Signal

from worker.core.options import TranscriptionOptions
from worker.jobs.queue import JobQueue
from worker.jobs.watch import FolderWatcher, WatchService
from worker.jobs.watch_folders import WatchFolder
from worker.library.library import Library


class WatchRunner(QObject):
    """Runs the watched folders of the preferences; `line` carries what the watcher has to say."""

    line = Signal(str)
    _said = Signal(str)  # from the watcher's thread

    def __init__(self, library: Library, queue: JobQueue, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.queue = queue
        self.service: WatchService | None = None
        self._stopping: list[WatchService] = []  # told to stop, maybe still ending a round
        self._said.connect(self.line, Qt.ConnectionType.QueuedConnection)

    def set_folders(self, folders: tuple[WatchFolder, ...] | list[WatchFolder], options: TranscriptionOptions) -> None:
        """Watch these folders from now on (none: stop watching), new jobs with `options` (each folder's model).
        Returns at once: the folders are checked and scanned in the watcher's thread."""
        if not folders:
            if self.service is not None:  # a round in progress (a slow share) ends on its own, off the GUI thread
                self.service.stop_event.set()
                self._stopping.append(self.service)
                self.service = None
        elif self.service is not None:
            self.service.watcher.set_folders(list(folders), options)
        else:
            watcher = FolderWatcher(self.library, self.queue, list(folders), self._said.emit, base_options=options)
            self.service = WatchService(watcher)
            self.service.start()

    @property
    def folders(self) -> list[WatchFolder]:
        return list(self.service.watcher.folders) if self.service is not None else []

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop watching; waits up to `timeout_s` for the rounds in progress (the window's shutdown)."""
        services = self._stopping + ([self.service] if self.service is not None else [])
        self.service, self._stopping = None, []
        for service in services:
            service.stop_event.set()
        return all([service.stop(timeout_s) for service in services])

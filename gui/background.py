"""The one way the window runs work off the GUI thread: a Call runs a function in a daemon thread (the job
queue's start_thread: one stuck on a dead network share never holds the app open at exit); what it returns
(or raises) comes back as a signal, queued to the GUI thread. A Call is kept referenced while it runs (whoever
started it may be gone), and waiting for it is explicit: wait(ms)."""

from __future__ import annotations

import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from worker.jobs.queue import start_thread

_running: set["Call"] = set()  # started and not yet ended
_running_lock = threading.Lock()


class Call(QObject):
    """`function()` in the background. Subclasses override run() (and may add signals of their own)."""

    returned = Signal(object)  # the value
    raised = Signal(object)  # the exception (worded for the user on the GUI thread)
    finished = Signal()  # after returned/raised

    def __init__(self, function: Callable[[], Any] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._function = function
        self._ended = threading.Event()
        self._started = False
        self.finished.connect(self._forget)  # on the GUI thread, after returned/raised were delivered

    def run(self) -> Any:
        assert self._function is not None
        return self._function()

    def start(self) -> None:
        self._started = True
        with _running_lock:
            _running.add(self)
        start_thread(self._body)

    def _body(self) -> None:
        try:
            value = self.run()
        except Exception as exc:
            self.raised.emit(exc)
        else:
            self.returned.emit(value)
        finally:
            self._ended.set()
            self.finished.emit()

    def _forget(self) -> None:
        """Dropped only now, on the GUI thread: a queued answer never outlives the object it came from."""
        with _running_lock:
            _running.discard(self)

    def wait(self, timeout_ms: int | None = None) -> bool:
        """Wait (blocking) until it has ended; False if `timeout_ms` passed first. True if it never started."""
        if not self._started:
            return True
        return self._ended.wait(None if timeout_ms is None else max(0, timeout_ms) / 1000)

    def isRunning(self) -> bool:  # noqa: N802 - the QThread name, for the callers that used one
        return self._started and not self._ended.is_set()

    def isFinished(self) -> bool:  # noqa: N802
        return self._ended.is_set()


def running_calls() -> list[Call]:
    """The calls started and not ended yet (a late one from a closed dialog included)."""
    with _running_lock:
        return [call for call in _running if not call.isFinished()]

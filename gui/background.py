"""The one way the window runs work off the GUI thread: a Call runs a function on Qt's thread pool through
superqt's create_worker; what it returns (or raises) comes back as a signal, queued to the GUI thread. A Call is
kept referenced while it runs (whoever started it may be gone), and waiting for it is explicit: wait(ms)."""

from __future__ import annotations

import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

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
        self._worker: Any = None

    def run(self) -> Any:
        assert self._function is not None
        return self._function()

    def start(self) -> None:
        from superqt.utils import create_worker

        self._started = True
        with _running_lock:
            _running.add(self)
        self._worker = create_worker(self._body)  # superqt holds its worker until the pool has run it
        self._worker.start()

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

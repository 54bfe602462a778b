"""The cancel token shared by whoever starts work and whoever does it, across threads."""

from __future__ import annotations

import threading
from typing import Callable

from worker.core.errors import Cancelled


class CancelToken:
    """Shared by the caller and a backend; cancel() and detach() may be called from any thread."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._detached = False

    def cancel(self) -> None:
        """Stop the job and everything it pays for (a Modal job cancels its calls)."""
        self._stop(detach=False)

    def detach(self) -> None:
        """Stop only the local side (the app closes; the job runs again at the next start): a Modal job leaves
        its calls running and written down, to be collected then. For local work it is the same as cancel()."""
        self._stop(detach=True)

    def _stop(self, detach: bool) -> None:
        with self._lock:
            if self._event.is_set():
                return  # the first of cancel() and detach() decides
            self._detached = detach
            self._event.set()
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback()

    @property
    def cancelled(self) -> bool:
        """True after cancel() or detach()."""
        return self._event.is_set()

    @property
    def detached(self) -> bool:
        """True when it was stopped by detach(): remote work is to be left running."""
        return self._detached

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()

    def on_cancel(self, callback: Callable[[], None]) -> None:
        """Run `callback` when cancelled (at once if already cancelled)."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


"""Backends by name: local and Modal behind the one Backend interface, and the pool that shares them between the
queue's jobs and region re-transcriptions (one backend per name, configured by the preferences held in memory)."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

from worker.backends.base import Backend

if TYPE_CHECKING:
    from worker.jobs.preferences import Preferences

log = logging.getLogger("whisper_desk.queue")

BackendFactory = Callable[[str, "Preferences"], Backend]


def create_backend(name: str, **settings: object) -> Backend:
    """The backend by name; heavy imports happen here, not at module import."""
    if name == "local":
        from worker.backends.local import LocalBackend

        return LocalBackend(**settings)  # type: ignore[arg-type]
    if name == "modal":
        from worker.modal.fanout import ModalBackend

        return ModalBackend(**settings)  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {name!r}; choose local or modal")


def default_backend_factory(name: str, preferences: Preferences) -> Backend:
    """The backend `name`, configured as `preferences` say."""
    return create_backend(name, **preferences.backend_settings(name))


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
            close_backend(backend)

    @contextmanager
    def lent(self, name: str) -> Iterator[Backend]:
        """The backend `name` for the length of a `with` block."""
        backend = self.acquire(name)
        try:
            yield backend
        finally:
            self.release(name)

    def reconfigure(self, preferences: Preferences) -> None:
        """New settings: idle backends are closed now (in the background), busy ones when their last job ends."""
        idle: list[Backend] = []
        with self._lock:
            self._preferences = preferences
            for name in list(self._backends):
                if self._users[name] <= 0:
                    idle.append(self._backends.pop(name))
                else:
                    self._stale.add(name)

        def close_idle() -> None:
            for backend in idle:
                close_backend(backend)

        if idle:
            threading.Thread(target=close_idle, name="whisper-desk-close-backends", daemon=True).start()

    def close_all(self) -> None:
        with self._lock:
            backends = list(self._backends.values())
            self._backends.clear()
        for backend in backends:
            close_backend(backend)


def close_backend(backend: Backend) -> None:
    """Close a backend that is no longer used; a failure to close is logged, never raised (its work is over)."""
    try:
        backend.close()
    except Exception:
        log.warning("closing the %s backend failed", getattr(backend, "name", "?"), exc_info=True)

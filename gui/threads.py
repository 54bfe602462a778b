"""Keeping QThreads referenced until they end: a QThread destroyed while running aborts the app."""

from __future__ import annotations

from PySide6.QtCore import QThread

_running: list[QThread] = []


def keep_alive(thread: QThread) -> None:
    """Hold a reference to `thread` until it has finished, whatever happens to whoever started it."""
    _running[:] = [t for t in _running if not t.isFinished()]
    _running.append(thread)


def kept_threads() -> list[QThread]:
    """The threads keep_alive holds that have not finished yet."""
    return [t for t in _running if not t.isFinished()]

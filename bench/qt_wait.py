"""Waiting in scripts that drive the real window: the event loop runs until a condition holds."""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QEventLoop, QTimer


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, settle_ms: int = 0) -> None:
    """Run the event loop until condition() holds (checked every 20 ms), then `settle_ms` more (pending paints).
    TimeoutError names `what` when it does not happen in time."""
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: loop.quit() if condition() else None)
    if not condition():
        poll.start(20)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        poll.stop()
    if not condition():
        raise TimeoutError(f"{what} did not happen in time")
    if settle_ms:
        run_for(settle_ms)


def run_for(ms: int) -> None:
    """Run the event loop for `ms` milliseconds."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()

"""Starts the desktop app: `whisper-desk [FILE ...]`, `python -m gui [FILE ...]`.

Startup imports only Qt and the light parts of the core; torch, whisper, faster-whisper, modal and PyAV
load when a job (or a background check) first needs them, in a worker thread.

WHISPER_DESK_REPORT_SHOWN=1 prints "whisper-desk shown <unix time>" once the window is first painted
(=quit: then exits); the startup benchmark uses it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QEvent, QObject, QSocketNotifier, QTimer
from PySide6.QtGui import QWindow
from PySide6.QtWidgets import QApplication, QWidget

from gui.icons import icon
from gui.settings import APPLICATION, ORGANIZATION
from gui.single_instance import Handover, InstanceServer, hand_over
from worker.core.interrupts import CtrlC
from worker.library.database import default_library_path

if TYPE_CHECKING:
    from gui.main_window import MainWindow

REPORT_SHOWN_ENV = "WHISPER_DESK_REPORT_SHOWN"


class ShownProbe(QObject):
    """Calls `callback` once, right after the window is first exposed and painted."""

    def __init__(self, window: QWidget, callback: Callable[[], None]) -> None:
        super().__init__(window)
        self._callback = callback
        self._done = False
        self._window = window
        handle = window.windowHandle()
        if handle is None:  # created on show(); install after it exists
            window.winId()
            handle = window.windowHandle()
        handle.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not self._done and event.type() == QEvent.Type.Expose and isinstance(watched, QWindow) and watched.isExposed():
            self._done = True
            QTimer.singleShot(0, self._callback)  # after the expose is handled: the first paint is done
        return False


def _report_shown(mode: str) -> None:
    print(f"whisper-desk shown {time.time():.6f}", flush=True)
    if mode == "quit":
        QApplication.quit()


def main(argv: list[str] | None = None) -> int:
    """Run the window; `argv` are files or folders to queue at start (like "Open with")."""
    paths = [arg for arg in (sys.argv[1:] if argv is None else list(argv)) if arg and not arg.startswith("-")]
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv and sys.argv[0] else "whisper-desk"])
    assert isinstance(app, QApplication)  # a window needs the widgets application, never a bare QCoreApplication
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("Whisper Desk")
    app.setDesktopFileName("whisper-desk")
    app.setWindowIcon(icon("app"))

    # one window per library: a window already open on it takes these files instead
    library_path = default_library_path()
    handover = hand_over(library_path, paths)
    if handover is Handover.HANDED:
        print(f"Whisper Desk is already open: {len(paths)} file(s) handed to it.", flush=True)
        return 0
    if handover is Handover.NO_ANSWER:
        print(f"Whisper Desk is already open on {library_path} but does not answer; close it or try again.",
              file=sys.stderr, flush=True)
        return 1
    instance = InstanceServer(library_path)
    instance.listen()

    from gui.main_window import MainWindow

    window = MainWindow()
    instance.filesReceived.connect(lambda files: _take_launch(window, files))
    report = os.environ.get(REPORT_SHOWN_ENV)
    if report:
        ShownProbe(window, lambda: _report_shown(report))
    window.show()
    if paths:
        QTimer.singleShot(0, lambda: window.add_paths(paths))  # after the window is up; they start at once

    # Ctrl+C in the terminal closes the window cleanly: the event loop watches the signal's wakeup pipe
    # (worker/core/interrupts.py), so no timer has to wake Python to look for it
    with CtrlC() as ctrl_c:
        notifier = None
        if ctrl_c.fileno() >= 0:  # not when started with Ctrl-C ignored (nohup)
            notifier = QSocketNotifier(ctrl_c.fileno(), QSocketNotifier.Type.Read)
            notifier.activated.connect(lambda: window.close() if ctrl_c.pressed() else None)
        code = app.exec()
        if notifier is not None:
            notifier.setEnabled(False)
    instance.close()
    window.shutdown()
    return int(code)


def _take_launch(window: MainWindow, files: list[str]) -> None:
    """A later launch's files are queued as if dropped, and the window comes to the front."""
    if files:
        QTimer.singleShot(0, lambda: window.add_paths(files))  # out of the socket's slot
    window.showNormal() if window.isMinimized() else window.show()
    window.raise_()
    window.activateWindow()

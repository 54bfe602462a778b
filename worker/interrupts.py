"""Ctrl-C that a waiting main thread never misses.

CPython runs a signal's Python handler in the main thread only, when that thread next looks for pending
signals. When the OS hands SIGINT to another thread (Linux may; gVisor sandboxes usually do) the main thread can
go on waiting without ever looking: measured here, `whisper-desk watch` and `transcribe` ignored Ctrl-C for over
a minute with stress-ng on both cores. The C-level handler still writes the signal's number to the wakeup fd
(`signal.set_wakeup_fd`) from whichever thread it runs in, so `CtrlC` waits on that pipe as well.
"""

from __future__ import annotations

import os
import queue
import select
import signal
import threading
from types import FrameType, TracebackType
from typing import Any, TypeVar

CHECK_EVERY_S = 0.2  # a main thread waiting on a queue looks for Ctrl-C this often

T = TypeVar("T")


class CtrlC:
    """`with CtrlC() as ctrl_c:` in the main thread: SIGINT is noted, never raised at a random point, and the
    waits below raise KeyboardInterrupt as soon as it arrives. Outside the main thread it only waits."""

    def __init__(self) -> None:
        self._noted = False
        self._pipe: tuple[int, int] | None = None
        self._previous_fd = -1
        self._previous_handler: Any = None

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            read_fd, write_fd = os.pipe()
            os.set_blocking(read_fd, False)
            os.set_blocking(write_fd, False)
            self._previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
            self._previous_handler = signal.signal(signal.SIGINT, self._note)
            self._pipe = (read_fd, write_fd)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self._pipe is None:
            return
        if signal.getsignal(signal.SIGINT) == self._note:  # a caller that chose to ignore Ctrl-C keeps that
            signal.signal(signal.SIGINT, self._previous_handler)
        signal.set_wakeup_fd(self._previous_fd)
        for fd in self._pipe:
            os.close(fd)
        self._pipe = None

    def _note(self, _signum: int, _frame: FrameType | None) -> None:
        self._noted = True

    def fileno(self) -> int:
        """The pipe an event loop can watch: readable when a signal came (-1 outside the main thread)."""
        return -1 if self._pipe is None else self._pipe[0]

    def pressed(self) -> bool:
        if self._pipe is not None:
            try:
                if signal.SIGINT in os.read(self._pipe[0], 512):
                    self._noted = True
            except BlockingIOError:
                pass
        return self._noted

    def check(self) -> None:
        if self.pressed():
            raise KeyboardInterrupt

    def wait(self, seconds: float) -> None:
        """Sleep `seconds`, or raise KeyboardInterrupt at once when Ctrl-C comes."""
        self.check()
        if self._pipe is None:
            threading.Event().wait(seconds)
            return
        select.select([self._pipe[0]], [], [], seconds)
        self.check()

    def get(self, source: queue.Queue[T]) -> T:
        """The next item of `source`, or KeyboardInterrupt as soon as Ctrl-C comes."""
        while True:
            self.check()
            try:
                return source.get(timeout=CHECK_EVERY_S)
            except queue.Empty:
                continue

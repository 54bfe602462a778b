"""Ctrl-C for a main thread that waits: noticed at once, raised only where it waits.

CPython runs a signal's Python handler in the main thread only, when that thread next runs bytecode; a SIGINT the
kernel hands to another thread (pthread_kill, or a kernel's choice) can leave a main thread blocked in a lock or a
selector unaware of it: an asyncio loop sleeping 30 s in the main thread noticed it only after the 30 s. The C-level
handler always writes the signal's number to the wakeup fd (`signal.set_wakeup_fd`), from whichever thread it runs
in, so `CtrlC` waits on that pipe too; the window's event loop watches the same pipe.

A process started with SIGINT ignored (nohup, a background job of a non-interactive shell) keeps ignoring it, as
POSIX programs do: CtrlC then stays inactive.
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
    waits below raise KeyboardInterrupt as soon as it arrives. Outside the main thread (or with SIGINT ignored
    from the start) it only waits."""

    def __init__(self) -> None:
        self._noted = False
        self._pipe: tuple[int, int] | None = None
        self._previous_fd = -1
        self._previous_handler: Any = None

    def __enter__(self) -> CtrlC:
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN):
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
        """The pipe an event loop can watch: readable when a signal came (-1 when inactive)."""
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

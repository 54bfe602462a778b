"""Reports in order, never under the lock that made them: changes are posted to an Outbox while their lock is
held (so the order of posting is the order of the changes), and delivered to the listener after that lock is
released, one at a time, by one thread at a time.

The thread that posted delivers, unless another thread is delivering already: that one delivers everything
posted before it stops, so a thread never waits for another thread's listener. A listener may therefore call
back into whatever posts (from its own thread: those reports follow once it returns; or from another thread,
even one it waits for). `wait_delivered()` waits for everything posted so far, for a caller that must see its
reports before it goes on and whose listener never waits (the window's bridge)."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Callable, Generic, TypeVar

Report = TypeVar("Report")

log = logging.getLogger("whisper_desk.queue")


class Outbox(Generic[Report]):
    def __init__(self, listener: Callable[[Report], None]) -> None:
        self.listener = listener
        self._pending: deque[tuple[int, Report]] = deque()
        self._posted = 0  # how many reports were ever posted
        self._delivered = 0  # ... and handed to the listener
        self._turn = threading.Lock()  # held by the one thread delivering
        self._progress = threading.Condition()
        self._local = threading.local()

    def post(self, report: Report) -> None:
        """Called with the poster's lock held, in the order the changes happen."""
        with self._progress:
            self._posted += 1
            self._pending.append((self._posted, report))

    def deliver(self) -> None:
        """Hand out what is pending (call it after releasing the lock the reports were posted under)."""
        if self.delivering:
            return  # a listener's own call: the loop below goes on with its reports once the listener returns
        while self._pending:
            if not self._turn.acquire(blocking=False):
                return  # another thread is delivering: it hands out ours too (it checks again after letting go)
            self._local.delivering = True
            try:
                while True:
                    with self._progress:
                        if not self._pending:
                            break
                        number, report = self._pending.popleft()
                    self._call(report)
                    with self._progress:
                        self._delivered = number
                        self._progress.notify_all()
            finally:
                self._local.delivering = False
                self._turn.release()
            # a report posted after our last look, by a thread that found us delivering, is picked up here

    @property
    def delivering(self) -> bool:
        """Whether the calling thread is inside the listener."""
        return bool(getattr(self._local, "delivering", False))

    def wait_delivered(self, timeout_s: float | None = None) -> bool:
        """Wait until every report posted so far has reached the listener (at once inside the listener itself,
        which would otherwise wait for its own return). False if `timeout_s` passed first."""
        self.deliver()
        if self.delivering:
            return True
        with self._progress:
            target = self._posted
            return self._progress.wait_for(lambda: self._delivered >= target, timeout_s)

    def _call(self, report: Report) -> None:
        try:
            self.listener(report)
        except Exception:  # a listener's bug never stops a job
            log.exception("the queue's listener failed on %s", type(report).__name__)

"""The Modal state in the status bar, checked in the background with a bounded time.

States: "not set up" (no token), "checking", "ready", "rejected", "unreachable". Everything runs in the background (gui.background):
looking for a token (worker.modal.credentials.has_credentials: a file read, but the module's first import costs
tens of ms) and, when asked, the network check (check_credentials, at most 10 s). The GUI thread never waits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QObject, QTimer, Signal

from gui.background import Call
from worker.modal.bounded import CHECK_TIMEOUT_CAP_S, cap_timeout

if TYPE_CHECKING:
    from worker.modal.checks import CheckResult

NOT_SET_UP, CHECKING, READY, REJECTED, UNREACHABLE = "not set up", "checking", "ready", "rejected", "unreachable"
UNKNOWN = "not checked"
NO_TOKEN_DETAIL = "no Modal token: use Modal > Set up Modal… (or run `modal token new`)"
_STATE_FOR_RESULT = {"ok": READY, "missing": NOT_SET_UP, "rejected": REJECTED, "unreachable": UNREACHABLE}


def _has_credentials() -> bool:
    from worker.modal.credentials import has_credentials

    return has_credentials()


def _check(timeout_s: float) -> CheckResult:
    from worker.modal.checks import check_credentials

    return check_credentials(timeout_s=timeout_s)


class _Check(Call):
    done = Signal(str, str)  # state, detail ("" state: a token exists and no network check was asked)

    def __init__(self, has_credentials: Callable[[], bool], check: Callable[[float], CheckResult] | None,
                 timeout_s: float) -> None:
        super().__init__()
        self._has_credentials = has_credentials
        self._check = check
        self._timeout_s = timeout_s

    def run(self) -> None:
        try:
            if not self._has_credentials():
                self.done.emit(NOT_SET_UP, NO_TOKEN_DETAIL)
                return
            if self._check is None:
                self.done.emit("", "a Modal token is set")
                return
            result = self._check(self._timeout_s)
            state = _STATE_FOR_RESULT.get(getattr(result, "state", ""), UNREACHABLE)
            self.done.emit(state, str(getattr(result, "detail", "")))
        except Exception as exc:  # a check never takes the window down
            self.done.emit(UNREACHABLE, f"{type(exc).__name__}: {exc}".splitlines()[0])


class ModalStatus(QObject):
    """Holds the Modal state; `check()` starts a background check (one at a time).
    `token_known` tells, after any check, whether a token is configured."""

    changed = Signal(str, str)  # state, detail

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        check: Callable[[float], CheckResult] = _check,
        has_credentials: Callable[[], bool] = _has_credentials,
        timeout_s: float = CHECK_TIMEOUT_CAP_S,
    ) -> None:
        super().__init__(parent)
        self._check = check
        self._has_credentials = has_credentials
        self.timeout_s = cap_timeout(timeout_s)
        self.state = UNKNOWN
        self.detail = ""
        self.token_known: bool | None = None  # None until a check has looked
        self._thread: _Check | None = None
        self._threads: set[_Check] = set()  # kept alive until finished
        self._generation = 0
        self._deadline = QTimer(self)
        self._deadline.setSingleShot(True)
        self._deadline.timeout.connect(self._overdue)

    def check(self, network: bool = True) -> None:
        """Look for a token and (with `network`) ask Modal whether it works, all in a worker thread."""
        if self._thread is not None:
            return  # one check at a time
        self._generation += 1
        generation = self._generation
        thread = _Check(self._has_credentials, self._check if network else None, self.timeout_s)
        thread.done.connect(lambda state, detail: self._finished(generation, state, detail))
        thread.finished.connect(lambda t=thread: self._thread_ended(t))
        self._thread = thread
        self._threads.add(thread)
        if network:
            self._set(CHECKING, "checking the Modal token…")
            # a guard in case the check overruns its bound: the state must not say "checking" forever
            self._deadline.start(int((self.timeout_s + 3.0) * 1000))
        thread.start()

    def _finished(self, generation: int, state: str, detail: str) -> None:
        self.token_known = state != NOT_SET_UP
        if generation != self._generation:
            return
        self._deadline.stop()
        if state:
            self._set(state, detail)
        elif self.state in (UNKNOWN, NOT_SET_UP):
            self._set(UNKNOWN, detail)

    def _thread_ended(self, thread: _Check) -> None:
        self._threads.discard(thread)
        if self._thread is thread:
            self._thread = None
        thread.deleteLater()

    def _overdue(self) -> None:
        self._generation += 1  # ignore the late answer
        self._thread = None  # a new check may start; the old thread ends on its own (bounded)
        self._set(UNREACHABLE, f"Modal did not answer within {self.timeout_s:.0f} s")

    def _set(self, state: str, detail: str) -> None:
        self.state, self.detail = state, detail
        self.changed.emit(state, detail)

    def wait(self, ms: int = 15000) -> None:
        """For shutdown: wait for checks in flight (they are bounded)."""
        for thread in list(self._threads):
            thread.wait(ms)

    def busy(self) -> bool:
        return self._thread is not None

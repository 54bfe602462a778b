"""What the wizard's pages share: the page ids, the services the wizard calls, the token being set up, the
background step (WizardTask), the page base class and two widget helpers."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, cast

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QWizardPage

from gui.background import Call
from gui.resources import RESOURCES
from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled
from worker.modal import checks, credentials, sign_in, warm
from worker.modal import deploy as deploying
from worker.modal import errors as modal_errors

if TYPE_CHECKING:
    from gui.wizard.setup_wizard import ModalSetupWizard
    from worker.backends.base import Backend

log = logging.getLogger("whisper_desk.wizard")

SAMPLE_PATH = RESOURCES / "sample.flac"
CANCELLED = "cancelled"

# page ids, in order
INTRO, TOKEN, VERIFY, DEPLOY, TRY = range(5)


def _default_backend() -> Backend:
    from worker.jobs.backend_pool import create_backend

    return create_backend("modal")


@dataclass
class WizardServices:
    """What the wizard calls; each can be replaced (tests inject fakes or point them at a loopback server)."""

    check_credentials: Callable[..., checks.CheckResult] = checks.check_credentials
    write_token: Callable[..., Path] = credentials.write_token
    sign_in_with_browser: Callable[..., sign_in.SignInResult] = sign_in.sign_in_with_browser
    check_app: Callable[..., checks.AppCheck] = checks.check_app
    deploy: Callable[..., deploying.DeployResult] = deploying.deploy
    warm_model_volume: Callable[..., dict[str, Any]] = warm.warm_model_volume
    make_backend: Callable[[], Backend] = _default_backend


@dataclass
class PendingToken:
    """The token the wizard is setting up. The secret is a credentials.Secret: it does not print."""

    token_id: str
    secret: credentials.Secret
    profile: str
    saved: bool = False  # True once it is in the Modal config file (browser sign-in saves it itself)
    workspace: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Output = Callable[[object], None]  # where a step sends its output: lines (str), or the try page's job reports
StepWork = Callable[[Output, CancelToken], object]  # a step: work(output, cancel) -> its result


class WizardTask(Call):
    """Runs fn(log, cancel) off the GUI thread. Emits output lines, then exactly one of succeeded/failed."""

    line = Signal(object)  # a line of output (str), or a job queue report the page shows (the try page's)
    succeeded = Signal(object)
    failed = Signal(str)  # a one-line message; CANCELLED when cancelled

    def __init__(self, name: str, fn: StepWork, parent: QObject | None = None) -> None:
        super().__init__(parent=parent)
        self.name = name
        self._fn = fn
        self.cancel_token = CancelToken()

    def run(self) -> None:
        try:
            result = self._fn(self.line.emit, self.cancel_token)
        except Cancelled:
            self.failed.emit(CANCELLED)
        except Exception as exc:  # shown to the user as one line
            self.failed.emit(modal_errors.explain_modal_error(exc))
        else:
            if self.cancel_token.cancelled:
                self.failed.emit(CANCELLED)
            else:
                self.succeeded.emit(result)

    def cancel(self) -> None:
        self.cancel_token.cancel()


def wrapped_label(text: str = "", name: str | None = None, rich: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
    if rich:
        label.setOpenExternalLinks(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction if rich else Qt.TextInteractionFlag.TextSelectableByMouse)
    if name:
        label.setObjectName(name)
    return label


def log_view(name: str, height: int = 140) -> QPlainTextEdit:
    view = QPlainTextEdit()
    view.setObjectName(name)
    view.setReadOnly(True)
    view.setMinimumHeight(height)
    view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    view.setMaximumBlockCount(2000)
    return view


class WizardPage(QWizardPage):
    """A page of the wizard: `wiz` is the wizard it is on; `task` the background step it runs, if any."""

    def __init__(self) -> None:
        super().__init__()
        self.task: WizardTask | None = None

    @property
    def wiz(self) -> ModalSetupWizard:
        return cast("ModalSetupWizard", self.wizard())

    @property
    def busy(self) -> bool:
        """True while one of this page's background steps runs (until its answer has been handled)."""
        return self.task is not None

    def append_line(self, view: QPlainTextEdit, line: str) -> None:
        """A line of output, with the token secret scrubbed out."""
        view.appendPlainText(self.wiz.scrub(line))

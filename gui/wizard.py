"""The Modal setup wizard: from no token to a verified connection, a deployed T4 app and a first GPU transcript.

A thin layer over worker.modal (the same code as `whisper-desk check` and `whisper-desk deploy`):
every slow step runs in the background (gui.background), is bounded and can be cancelled; the GUI thread never waits on the
network. The token secret is never put in a label, a log view or a log record.

Tests and docs inject `server_url` (a loopback fake Modal server) and any of the service functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from gui.background import Call
from gui.resources import RESOURCES
from worker.backends.events import timing_line
from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, ModalSetupError, TranscriptionError
from worker.core.options import DEFAULT_MODEL, TranscriptionOptions
from worker.modal import bounded, checks, credentials, sign_in, warm
from worker.modal import deploy as deploying
from worker.modal import errors as modal_errors
from worker.modal.cost import DEFAULT_T4_DOLLARS_PER_HOUR

log = logging.getLogger("whisper_desk.wizard")

SAMPLE_PATH = RESOURCES / "sample.flac"
CANCELLED = "cancelled"

# page ids, in order
INTRO, TOKEN, VERIFY, DEPLOY, TRY = range(5)


def _default_backend():
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
    warm_model_volume: Callable[..., dict] = warm.warm_model_volume
    make_backend: Callable[[], Any] = _default_backend


@dataclass
class PendingToken:
    """The token the wizard is setting up. The secret is a credentials.Secret: it does not print."""

    token_id: str
    secret: credentials.Secret
    profile: str
    saved: bool = False  # True once it is in the Modal config file (browser sign-in saves it itself)
    workspace: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _Task(Call):
    """Runs fn(log, cancel) off the GUI thread. Emits output lines, then exactly one of succeeded/failed."""

    line = Signal(str)
    succeeded = Signal(object)
    failed = Signal(str)  # a one-line message; CANCELLED when cancelled

    def __init__(self, name: str, fn: Callable[[Callable[[str], None], CancelToken], Any], parent=None) -> None:
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


def _label(text: str = "", name: str | None = None, rich: bool = False) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText if rich else Qt.TextFormat.PlainText)
    if rich:
        label.setOpenExternalLinks(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction if rich else Qt.TextInteractionFlag.TextSelectableByMouse)
    if name:
        label.setObjectName(name)
    return label


def _home_short(path: Path) -> str:
    home = Path.home()
    try:
        return "~/" + str(Path(path).relative_to(home))
    except ValueError:
        return str(path)


def _log_view(name: str, height: int = 140) -> QPlainTextEdit:
    view = QPlainTextEdit()
    view.setObjectName(name)
    view.setReadOnly(True)
    view.setMinimumHeight(height)
    view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
    view.setMaximumBlockCount(2000)
    return view


class _Page(QWizardPage):
    @property
    def wiz(self) -> "ModalSetupWizard":
        return self.wizard()  # type: ignore[return-value]

    def _append(self, view: QPlainTextEdit, line: str) -> None:
        view.appendPlainText(self.wiz.scrub(line))


# --- page 1 --------------------------------------------------------------------------------------------------


class IntroPage(_Page):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Transcribe on Modal GPUs")
        self.setSubTitle("Optional: Whisper Desk works on this computer without any account.")
        layout = QVBoxLayout(self)
        layout.addWidget(_label(
            "Modal is a cloud service that can run Whisper Desk's transcription on NVIDIA T4 GPUs. "
            "Long files are cut into pieces that run side by side on several GPUs, so an hour of audio "
            "takes minutes instead of an hour."
        ))
        layout.addWidget(_label(
            "Modal bills the GPU time per second to your own Modal account "
            f"(a T4 is about ${DEFAULT_T4_DOLLARS_PER_HOUR:.2f} per GPU-hour). Nothing runs, and nothing is "
            "billed, unless you pick Modal for a job."
        ))
        layout.addWidget(_label(
            "You don't need this: without Modal, Whisper Desk transcribes on this computer, offline, "
            "with the model that ships with it."
        ))
        layout.addWidget(_label(
            "This wizard will:\n"
            "  1. connect your Modal token (sign in with the browser, or paste one),\n"
            "  2. check it with Modal,\n"
            "  3. deploy the Whisper Desk worker app to your Modal account,\n"
            "  4. optionally transcribe a short sample on a T4."
        ))
        self.status = _label(name="introStatus")
        layout.addWidget(self.status)
        layout.addStretch(1)

    def initializePage(self) -> None:
        try:
            found = credentials.resolve_credentials()
        except ModalSetupError as exc:
            self.status.setText(str(exc))
            return
        if found is None:
            self.status.setText("No Modal token is set on this computer yet.")
        else:
            self.status.setText(
                f"A Modal token is already set ({found.source}). You can keep it or set up a new one."
            )


# --- page 2 --------------------------------------------------------------------------------------------------


class TokenPage(_Page):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Your Modal token")
        self.setSubTitle("Sign in with the browser, or paste a token from modal.com/settings/tokens.")
        self._browser_token: PendingToken | None = None
        self._task: _Task | None = None

        layout = QVBoxLayout(self)
        self.env_note = _label(name="envNote")
        self.env_note.setStyleSheet("color: #8a5a00;")
        layout.addWidget(self.env_note)

        browser = QGroupBox("Sign in with the browser")
        browser_layout = QVBoxLayout(browser)
        row = QHBoxLayout()
        self.sign_in_button = QPushButton("Sign in with the browser")
        self.sign_in_button.setObjectName("signInButton")
        self.sign_in_cancel = QPushButton("Cancel sign-in")
        self.sign_in_cancel.setObjectName("signInCancel")
        self.sign_in_cancel.setEnabled(False)
        row.addWidget(self.sign_in_button)
        row.addWidget(self.sign_in_cancel)
        row.addStretch(1)
        browser_layout.addLayout(row)
        self.sign_in_status = _label(
            "Opens modal.com in your browser (runs `modal token new`); approve there and the token is saved "
            "for you.", name="signInStatus")
        browser_layout.addWidget(self.sign_in_status)
        self.sign_in_log = _log_view("signInLog", 90)
        self.sign_in_log.setMaximumHeight(130)
        browser_layout.addWidget(self.sign_in_log)
        layout.addWidget(browser)

        paste = QGroupBox("Or paste a token")
        form = QFormLayout(paste)
        self.token_id = QLineEdit()
        self.token_id.setObjectName("tokenId")
        self.token_id.setPlaceholderText("ak-…")
        self.token_secret = QLineEdit()
        self.token_secret.setObjectName("tokenSecret")
        self.token_secret.setPlaceholderText("as-…")
        self.token_secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.show_secret = QCheckBox("Show")
        self.show_secret.setObjectName("showSecret")
        secret_row = QWidget()
        secret_layout = QHBoxLayout(secret_row)
        secret_layout.setContentsMargins(0, 0, 0, 0)
        secret_layout.addWidget(self.token_secret, 1)
        secret_layout.addWidget(self.show_secret)
        self.profile = QLineEdit(credentials.DEFAULT_PROFILE)
        self.profile.setObjectName("profile")
        form.addRow("Token ID", self.token_id)
        form.addRow("Token Secret", secret_row)
        form.addRow("Profile name", self.profile)
        layout.addWidget(paste)

        self.reason = _label(name="tokenReason")
        self.reason.setStyleSheet("color: #a00;")
        layout.addWidget(self.reason)
        layout.addStretch(1)

        self.sign_in_button.clicked.connect(self.start_sign_in)
        self.sign_in_cancel.clicked.connect(self.cancel_sign_in)
        self.show_secret.toggled.connect(self._toggle_secret)
        for edit in (self.token_id, self.token_secret, self.profile):
            edit.textChanged.connect(self._edited)

    def initializePage(self) -> None:
        if credentials.env_credentials_set():
            self.env_note.setText(
                "Note: MODAL_TOKEN_ID / MODAL_TOKEN_SECRET are set in the environment. Modal uses them instead "
                "of any saved profile, so Whisper Desk will too while they are set."
            )
            self.env_note.show()
        else:
            self.env_note.hide()
        self._update_reason()

    def _toggle_secret(self, shown: bool) -> None:
        self.token_secret.setEchoMode(QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password)

    def _edited(self) -> None:
        if self.sender() is not self.profile and (self.token_id.text() or self.token_secret.text()):
            self._browser_token = None  # a pasted token replaces a browser sign-in
        self._update_reason()

    def shape_problem(self) -> str | None:
        if self._task is not None:
            return "Waiting for the browser sign-in to finish (or cancel it)."
        if self._browser_token is not None:
            return None
        profile_problem = credentials.validate_profile_name(self.profile.text().strip())
        if not self.token_id.text() and not self.token_secret.text():
            return "Sign in with the browser, or paste your Token ID and Token Secret."
        problem = credentials.validate_token_shape(self.token_id.text(), self.token_secret.text()) or profile_problem
        return problem[0].upper() + problem[1:] + "." if problem else None

    def _update_reason(self) -> None:
        self.reason.setText(self.shape_problem() or "")
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        return self.shape_problem() is None

    def pending_token(self) -> PendingToken:
        if self._browser_token is not None:
            return self._browser_token
        return PendingToken(
            token_id=self.token_id.text().strip(),
            secret=credentials.Secret(self.token_secret.text().strip()),
            profile=self.profile.text().strip(),
        )

    def validatePage(self) -> bool:
        if not self.isComplete():
            return False
        self.wiz.token = self.pending_token()
        return True

    # browser sign-in
    def start_sign_in(self) -> None:
        profile = self.profile.text().strip() or credentials.DEFAULT_PROFILE
        problem = credentials.validate_profile_name(profile)
        if problem:
            self.sign_in_status.setText(problem[0].upper() + problem[1:] + ".")
            return
        wiz = self.wiz
        self.sign_in_log.clear()
        self.sign_in_status.setText(
            f"Waiting for you to approve in the browser (at most {wiz.sign_in_timeout_s / 60:.0f} min)…"
        )
        self.sign_in_button.setEnabled(False)
        self.sign_in_cancel.setEnabled(True)

        def work(log_line, cancel):
            return wiz.services.sign_in_with_browser(
                log_line, cancel=cancel, timeout_s=wiz.sign_in_timeout_s, profile=profile, server_url=wiz.server_url
            )

        self._task = wiz.start_task("sign-in", work, self._signed_in, self._sign_in_failed,
                                    lambda line: self._append(self.sign_in_log, line))
        self._update_reason()

    def cancel_sign_in(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.sign_in_status.setText("Cancelling…")

    def _sign_in_done(self) -> None:
        self._task = None
        self.sign_in_button.setEnabled(True)
        self.sign_in_cancel.setEnabled(False)

    def _signed_in(self, result: sign_in.SignInResult) -> None:
        self._sign_in_done()
        try:
            entry = credentials.read_profiles(result.path).get(result.profile, {})
        except ModalSetupError as exc:
            self._sign_in_failed(str(exc))
            return
        self._browser_token = PendingToken(
            token_id=result.token_id, secret=credentials.Secret(str(entry.get("token_secret", ""))),
            profile=result.profile, saved=True,
        )
        self.token_id.blockSignals(True)
        self.token_secret.blockSignals(True)
        self.token_id.clear()
        self.token_secret.clear()
        self.token_id.blockSignals(False)
        self.token_secret.blockSignals(False)
        self.sign_in_status.setText(f"Signed in: token {result.token_id} saved in profile {result.profile}.")
        log.info("browser sign-in saved token %s in profile %s", result.token_id, result.profile)
        self._update_reason()

    def _sign_in_failed(self, message: str) -> None:
        self._sign_in_done()
        if message == CANCELLED:
            self.sign_in_status.setText("Sign-in cancelled. Nothing was saved.")
        else:
            self.sign_in_status.setText(f"Sign-in did not work: {message}")
        log.info("browser sign-in: %s", message)
        self._update_reason()

    def cleanupPage(self) -> None:
        self.cancel_sign_in()


# --- page 3 --------------------------------------------------------------------------------------------------


class VerifyPage(_Page):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Check the token with Modal")
        self.setSubTitle("Modal is asked whether it accepts the token. This takes at most 10 seconds.")
        self.result: checks.CheckResult | None = None
        self.saved_path: Path | None = None
        self._task: _Task | None = None
        layout = QVBoxLayout(self)
        self.status = _label(name="verifyStatus")
        font = QFont(self.status.font())
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        self.status.setFont(font)
        layout.addWidget(self.status)
        self.detail = _label(name="verifyDetail")
        layout.addWidget(self.detail)
        row = QHBoxLayout()
        self.cancel_button = QPushButton("Cancel check")
        self.cancel_button.setObjectName("verifyCancel")
        self.retry_button = QPushButton("Check again")
        self.retry_button.setObjectName("verifyRetry")
        row.addWidget(self.cancel_button)
        row.addWidget(self.retry_button)
        row.addStretch(1)
        layout.addLayout(row)
        layout.addStretch(1)
        self.cancel_button.clicked.connect(self.cancel)
        self.retry_button.clicked.connect(self.start)

    def initializePage(self) -> None:
        self.start()

    def start(self) -> None:
        wiz = self.wiz
        token = wiz.token
        if token is None:
            return
        self.result = None
        self.saved_path = None
        self.status.setText("Checking with Modal…")
        self.detail.setText(f"Token {token.token_id}, profile {token.profile}.")
        self.cancel_button.setEnabled(True)
        self.retry_button.setEnabled(False)
        self.completeChanged.emit()

        def work(_log, cancel):
            return wiz.services.check_credentials(
                timeout_s=wiz.check_timeout_s, token_id=token.token_id, token_secret=token.secret,
                server_url=wiz.server_url, cancel=cancel,
            )

        self._task = wiz.start_task("verify", work, self._checked, self._failed)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.status.setText("Cancelling…")

    def _finish(self) -> None:
        self._task = None
        self.cancel_button.setEnabled(False)
        self.retry_button.setEnabled(True)

    def _checked(self, result: checks.CheckResult) -> None:
        self._finish()
        wiz = self.wiz
        token = wiz.token
        self.result = result
        log.info("credential check: %s", result.state)
        if result.state == "ok" and token is not None:
            if not token.saved:
                try:
                    # written only now, after Modal accepted it; atomic, 0600, other profiles kept
                    self.saved_path = wiz.services.write_token(
                        token.token_id, token.secret, profile=token.profile, activate=True,
                        server_url=wiz.server_url,
                    )
                except Exception as exc:
                    self.result = None
                    self.status.setText("Accepted, but the token could not be saved.")
                    self.detail.setText(modal_errors.explain_modal_error(exc))
                    self.completeChanged.emit()
                    return
                token.saved = True
            else:
                self.saved_path = credentials.config_path()
            token.workspace = result.workspace
            where = f"workspace {result.workspace}" if result.workspace else "your Modal account"
            self.status.setText(f"Accepted by {where}.")
            detail = f"Saved as profile {token.profile} (active) in {_home_short(self.saved_path or credentials.config_path())}."
            if credentials.env_credentials_set():
                detail += " MODAL_TOKEN_ID / MODAL_TOKEN_SECRET in the environment still win over this profile."
            self.detail.setText(detail)
        elif result.state == "rejected":
            self.status.setText("Modal rejected this token.")
            self.detail.setText(f"{result.detail}. Go back to fix it. Nothing was saved.")
        elif result.state == "unreachable":
            self.status.setText("Could not reach Modal.")
            self.detail.setText(f"{result.detail}. Nothing was saved.")
        else:
            self.status.setText("No token to check.")
            self.detail.setText(result.detail)
        self.completeChanged.emit()

    def _failed(self, message: str) -> None:
        self._finish()
        self.result = None
        if message == CANCELLED:
            self.status.setText("Check cancelled.")
            self.detail.setText("Nothing was saved. Check again, or go back.")
        else:
            self.status.setText("The check failed.")
            self.detail.setText(message)
        log.info("credential check: %s", message)
        self.completeChanged.emit()

    def isComplete(self) -> bool:
        token = self.wiz.token if self.wizard() else None
        return self.result is not None and self.result.state == "ok" and token is not None and token.saved

    def cleanupPage(self) -> None:
        self.cancel()


# --- page 4 --------------------------------------------------------------------------------------------------


class DeployPage(_Page):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Deploy the worker app")
        self.setSubTitle("The T4 worker app goes into your Modal account once; later jobs call it by name.")
        self.app_state: checks.AppCheck | None = None
        self.deployed = False
        self.warmed = False
        self._task: _Task | None = None
        layout = QVBoxLayout(self)
        self.status = _label(name="deployStatus")
        layout.addWidget(self.status)
        row = QHBoxLayout()
        self.deploy_button = QPushButton("Deploy")
        self.deploy_button.setObjectName("deployButton")
        self.warm_button = QPushButton("Warm the model cache")
        self.warm_button.setObjectName("warmButton")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("deployCancel")
        for button in (self.deploy_button, self.warm_button, self.cancel_button):
            row.addWidget(button)
        row.addStretch(1)
        layout.addLayout(row)
        self.log_view = _log_view("deployLog", 200)
        layout.addWidget(self.log_view, 1)
        self.deploy_button.clicked.connect(self.start_deploy)
        self.warm_button.clicked.connect(self.start_warm)
        self.cancel_button.clicked.connect(self.cancel)
        self._set_busy(False)

    def _kwargs(self) -> dict[str, Any]:
        token = self.wiz.token
        if token is None:
            return {"server_url": self.wiz.server_url}
        return {"token_id": token.token_id, "token_secret": token.secret, "server_url": self.wiz.server_url}

    def _set_busy(self, busy: bool) -> None:
        if self.deployed != self.isFinalPage():
            self.setFinalPage(self.deployed)  # deployed: Finish is offered here too; "Try it" stays optional
        self.deploy_button.setEnabled(not busy)
        self.warm_button.setEnabled(not busy and self.deployed)
        self.cancel_button.setEnabled(busy)

    def initializePage(self) -> None:
        self.log_view.clear()
        self.status.setText("Looking for the worker app in your Modal account…")
        self._set_busy(True)
        wiz = self.wiz
        kwargs = self._kwargs()

        def work(_log, cancel):
            return wiz.services.check_app(timeout_s=wiz.check_timeout_s, cancel=cancel, **kwargs)

        self._task = wiz.start_task("check-app", work, self._app_checked, self._failed)

    def _app_checked(self, state: checks.AppCheck) -> None:
        self._task = None
        self.app_state = state
        log.info("worker app: %s", state.state)
        if state.state == "deployed" and state.up_to_date:
            self.deployed = True
            version = f" (worker API v{state.deployed_version})" if state.deployed_version else ""
            self.status.setText(f"Already deployed at the same version{version}: nothing to do. "
                                f"You can warm the model cache for {self.wiz.model}, or go on.")
            self.deploy_button.setText("Redeploy anyway")
        elif state.state == "deployed":
            self.deployed = True  # it works, but may not match this app
            self.status.setText(f"{state.detail}. Redeploy to update it.")
            self.deploy_button.setText("Redeploy")
        elif state.state == "not deployed":
            self.status.setText("The worker app is not deployed yet. Deploy it now (the first deploy builds "
                                "the T4 image and takes a few minutes).")
            self.deploy_button.setText("Deploy")
        else:
            self.status.setText(f"Could not tell whether the worker app is deployed: {state.detail}.")
            self.deploy_button.setText("Deploy")
        self._set_busy(False)
        self.completeChanged.emit()

    def start_deploy(self) -> None:
        wiz = self.wiz
        token = wiz.token
        profile = token.profile if token is not None else None
        self.status.setText("Deploying… (the log follows below)")
        self._set_busy(True)

        def work(log_line, cancel):
            return wiz.services.deploy(log_line, cancel=cancel, timeout_s=wiz.deploy_timeout_s,
                                       server_url=wiz.server_url, profile=profile)

        self._task = wiz.start_task("deploy", work, self._deployed, self._failed,
                                    lambda line: self._append(self.log_view, line))

    def _deployed(self, result: deploying.DeployResult) -> None:
        self._task = None
        self.deployed = True
        self.deploy_button.setText("Redeploy")
        self.status.setText(f"Deployed {result}.")
        log.info("deployed %s", result)
        self._set_busy(False)
        self.completeChanged.emit()
        if self.wiz.warm_after_deploy:
            self.start_warm()

    def start_warm(self) -> None:
        wiz = self.wiz
        model = wiz.model
        self.status.setText(f"Warming the model cache: loading {model} on a T4 (a cold start can take a minute)…")
        self._append(self.log_view, f"warming the model cache Volume for {model}")
        self._set_busy(True)

        def work(_log, cancel):
            return wiz.services.warm_model_volume(model, timeout_s=wiz.warm_timeout_s, cancel=cancel,
                                                  server_url=wiz.server_url)

        self._task = wiz.start_task("warm", work, self._warmed, self._failed)

    def _warmed(self, timings: dict) -> None:
        self._task = None
        self.warmed = True
        line = timing_line(timings) if timings else "no timings"
        self._append(self.log_view, line)
        self.status.setText(f"Deployed, and {self.wiz.model} is in the model cache. {line}")
        self._set_busy(False)

    def _failed(self, message: str) -> None:
        name = self._task.name if self._task is not None else "step"
        self._task = None
        what = {"check-app": "The app check", "deploy": "Deploy", "warm": "Warming the model cache"}.get(name, "It")
        if message == CANCELLED:
            self.status.setText(f"{what} was cancelled." + (" The worker app is deployed." if self.deployed else ""))
        else:
            self.status.setText(f"{what} did not work: {message}")
        self._append(self.log_view, f"{name}: {message}")
        log.info("%s: %s", name, message)
        self._set_busy(False)
        self.completeChanged.emit()

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.status.setText("Cancelling…")

    def isComplete(self) -> bool:
        return self.deployed and self._task is None

    def cleanupPage(self) -> None:
        self.cancel()


# --- page 5 --------------------------------------------------------------------------------------------------


class TryPage(_Page):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Try it")
        self.setSubTitle("Optional: transcribe an 11-second sample on a T4 GPU.")
        self.transcript = None
        self._task: _Task | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(_label(
            "The sample is President Kennedy's \"ask not\" line (1961). On a warm container this takes a few "
            "seconds; a cold start adds up to a minute. It costs a fraction of a cent."
        ))
        row = QHBoxLayout()
        self.run_button = QPushButton("Transcribe the sample")
        self.run_button.setObjectName("tryButton")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("tryCancel")
        self.cancel_button.setEnabled(False)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.status = _label(name="tryStatus")
        layout.addWidget(self.status)
        self.text_view = _log_view("tryTranscript", 80)
        self.text_view.setFont(QFont())
        layout.addWidget(self.text_view)
        self.timing_view = _log_view("tryTimings", 60)
        self.timing_view.setMaximumHeight(110)
        layout.addWidget(self.timing_view)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.setFinalPage(True)

    def start(self) -> None:
        wiz = self.wiz
        sample = wiz.sample_path
        model = wiz.model
        self.text_view.clear()
        self.timing_view.clear()
        self.transcript = None
        self.status.setText(f"Transcribing {sample.name} with {model} on Modal…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

        def work(log_line, cancel):
            return transcribe_sample(sample, TranscriptionOptions(model=model, language="en"),
                                     wiz.services.make_backend, log_line, cancel)

        self._task = wiz.start_task("try", work, self._done, self._failed, self._line)

    def _line(self, line: str) -> None:
        kind, _, text = line.partition("\t")
        if kind == "timing":
            self._append(self.timing_view, text)
        elif kind == "text" and text:
            self._append(self.text_view, text)

    def _finish(self) -> None:
        self._task = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _done(self, transcript) -> None:
        self._finish()
        self.transcript = transcript
        self.text_view.setPlainText(self.wiz.scrub(transcript.text))
        timings = transcript.timings or {}
        if timings and not self.timing_view.toPlainText():
            self._append(self.timing_view, timing_line(timings))
        gpu = str(timings.get("gpu", "?"))
        if gpu.lower() == "cpu":
            self.status.setText("Done, on a CPU (not a Modal GPU).")
        else:
            self.status.setText(f"Done on {gpu}: Modal is ready for your files.")
        log.info("sample transcribed on %s", gpu)

    def _failed(self, message: str) -> None:
        self._finish()
        self.status.setText("Cancelled." if message == CANCELLED else f"The sample did not go through: {message}")
        log.info("try: %s", message)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.status.setText("Cancelling…")

    def cleanupPage(self) -> None:
        self.cancel()


def transcribe_sample(sample: Path, options: TranscriptionOptions, make_backend: Callable[[], Any],
                      log_line: Callable[[str], None], cancel: CancelToken) -> Any:
    """In the try step's thread: the sample through the job queue (worker.jobs.queue), like any file, with a
    library of its own in memory (the sample never lands in the user's library). Returns the Transcript."""
    import threading
    from dataclasses import replace

    from worker.jobs.preferences import Preferences
    from worker.jobs.queue import JobFinished, JobQueue, JobStatus, LogLine, QueueEvent, SegmentsArrived
    from worker.library.database import Library

    endings: list[JobFinished] = []
    ended = threading.Event()

    def listen(event: QueueEvent) -> None:
        if isinstance(event, SegmentsArrived):
            for segment in event.segments:
                log_line("text\t" + segment.text.strip())
        elif isinstance(event, LogLine) and not event.text.startswith(f"{sample.name}: failed: "):
            log_line("timing\t" + event.text.removeprefix(f"{sample.name}: "))
        elif isinstance(event, JobFinished):
            endings.append(event)
            ended.set()

    library = Library(":memory:")
    preferences = replace(Preferences.load(), backend="modal", auto_export_formats=())
    queue = JobQueue(library, preferences, listen, backend_factory=lambda _name, _prefs: make_backend(),
                     modal_ready=lambda: True, only_own_jobs=True)
    try:
        [record] = queue.add_files([sample], "modal", options)
        cancel.on_cancel(lambda: queue.cancel([record.id]))
        ended.wait()
        ending = endings[0]
        if ending.status == JobStatus.CANCELLED:
            raise Cancelled()
        if ending.status == JobStatus.FAILED:
            raise TranscriptionError(ending.error or "the sample did not go through")
        return library.transcript(record.id)
    finally:
        queue.shutdown()  # closes the backend
        library.close()


# --- the wizard ----------------------------------------------------------------------------------------------


class ModalSetupWizard(QWizard):
    """Set up Modal: token, check, deploy, try. Offered, never forced: the app works locally without it.

    Keyword arguments replace what it talks to: `server_url` (e.g. a loopback fake Modal server),
    `services` or any single service function by name (check_credentials, write_token, sign_in_with_browser,
    check_app, deploy, warm_model_volume, make_backend), timeouts, the model to warm, the sample to try, and
    `start_id` (INTRO by default; DEPLOY or TRY skip the token pages when the saved token already works).
    """

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        server_url: str | None = None,
        services: WizardServices | None = None,
        model: str = DEFAULT_MODEL,
        sample_path: Path = SAMPLE_PATH,
        check_timeout_s: float = bounded.CHECK_TIMEOUT_CAP_S,
        sign_in_timeout_s: float = sign_in.SIGN_IN_TIMEOUT_S,
        deploy_timeout_s: float = deploying.DEPLOY_TIMEOUT_S,
        warm_timeout_s: float = warm.WARM_TIMEOUT_S,
        warm_after_deploy: bool = True,
        start_id: int = INTRO,
        **service_overrides: Callable[..., Any],
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Set up Modal GPUs")
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        self.setOption(QWizard.WizardOption.NoBackButtonOnStartPage, True)
        self.setOption(QWizard.WizardOption.HaveFinishButtonOnEarlyPages, True)
        self.services = services or WizardServices()
        for name, fn in service_overrides.items():
            if not hasattr(self.services, name):
                raise TypeError(f"unknown wizard service {name!r}")
            setattr(self.services, name, fn)
        self.server_url = server_url
        self.model = model
        self.sample_path = Path(sample_path)
        self.check_timeout_s = min(float(check_timeout_s), bounded.CHECK_TIMEOUT_CAP_S)
        self.sign_in_timeout_s = sign_in_timeout_s
        self.deploy_timeout_s = deploy_timeout_s
        self.warm_timeout_s = warm_timeout_s
        self.warm_after_deploy = warm_after_deploy
        self.token: PendingToken | None = None
        self._tasks: list[_Task] = []

        self.intro_page = IntroPage()
        self.token_page = TokenPage()
        self.verify_page = VerifyPage()
        self.deploy_page = DeployPage()
        self.try_page = TryPage()
        for page_id, page in enumerate(
            (self.intro_page, self.token_page, self.verify_page, self.deploy_page, self.try_page)
        ):
            self.setPage(page_id, page)
        self.setStartId(start_id)  # e.g. DEPLOY when a job found the token fine but the app missing
        self.resize(720, 560)

    def scrub(self, text: str) -> str:
        return credentials.scrub(text, self.token.secret if self.token is not None else None)

    def start_task(
        self,
        name: str,
        fn: Callable[[Callable[[str], None], CancelToken], Any],
        on_success: Callable[[Any], None],
        on_failure: Callable[[str], None],
        on_line: Callable[[str], None] | None = None,
    ) -> _Task:
        # No parent and no deleteLater: the wizard holds each task until its thread has ended, and nothing
        # connected to a task refers back to it, so dropping it deletes it here, in the GUI thread.
        task = _Task(name, fn)
        token = task.cancel_token
        if on_line is not None:
            task.line.connect(on_line)

        def succeeded(result: Any) -> None:
            # an answer that arrives after Cancel was pressed counts as cancelled: nothing is saved
            if token.cancelled:
                on_failure(CANCELLED)
            else:
                on_success(result)

        task.succeeded.connect(succeeded)
        task.failed.connect(on_failure)
        task.finished.connect(self._reap)
        self._tasks.append(task)
        task.start()
        return task

    def _reap(self) -> None:
        ended = self.sender()
        for task in list(self._tasks):
            if task is ended or task.isFinished():
                task.wait()  # `finished` comes just before the thread ends: let it end
                self._tasks.remove(task)

    def running_tasks(self) -> list[str]:
        return [task.name for task in self._tasks if task.isRunning()]

    def cancel_all(self, wait_ms: int = 15000) -> None:
        """Cancel every running step and wait for its thread (each stops within a few seconds)."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            task.wait(wait_ms)

    def done(self, result: int) -> None:
        self.cancel_all()
        super().done(result)

    def closeEvent(self, event) -> None:
        self.cancel_all()
        super().closeEvent(event)

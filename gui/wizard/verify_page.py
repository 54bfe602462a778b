"""Page 3: Modal is asked whether it accepts the token; only an accepted token is saved (atomically, 0600)."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout

from gui.wizard.shared import CANCELLED, Output, WizardPage, log, wrapped_label
from worker.core.cancel import CancelToken
from worker.modal import checks, credentials
from worker.modal import errors as modal_errors


class VerifyPage(WizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Check the token with Modal")
        self.setSubTitle("Modal is asked whether it accepts the token. This takes at most 10 seconds.")
        self.result: checks.CheckResult | None = None
        self.saved_path: Path | None = None
        layout = QVBoxLayout(self)
        self.status = wrapped_label(name="verifyStatus")
        font = QFont(self.status.font())
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        self.status.setFont(font)
        layout.addWidget(self.status)
        self.detail = wrapped_label(name="verifyDetail")
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

        def work(_output: Output, cancel: CancelToken) -> checks.CheckResult:
            return wiz.services.check_credentials(
                timeout_s=wiz.check_timeout_s, token_id=token.token_id, token_secret=token.secret,
                server_url=wiz.server_url, cancel=cancel,
            )

        self.task = wiz.start_task("verify", work, self._checked, self._failed)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling…")

    def _finish(self) -> None:
        self.task = None
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
                    # written only now, after Modal accepted it; atomic, 0600, other profiles kept; the modal
                    # CLI's active profile stays the user's (activate=None: only a first profile is activated)
                    self.saved_path = wiz.services.write_token(
                        token.token_id, token.secret, profile=token.profile, activate=None,
                        server_url=wiz.server_url,
                    )
                    credentials.set_app_profile(token.profile)  # Whisper Desk uses it, whichever is active
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
            where_saved = _home_short(self.saved_path or credentials.config_path())
            other = credentials.other_active_profile(token.profile)
            detail = (f"Saved as profile {token.profile} in {where_saved}; Whisper Desk uses it. The modal CLI's active "
                      f"profile is still {other} (`modal profile activate {token.profile}` switches it)." if other
                      else f"Saved as profile {token.profile} (active) in {where_saved}.")
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


def _home_short(path: Path) -> str:
    home = Path.home()
    try:
        return "~/" + str(Path(path).relative_to(home))
    except ValueError:
        return str(path)

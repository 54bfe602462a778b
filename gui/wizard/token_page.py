"""Page 2: the Modal token, by browser sign-in (`modal token new`, streamed) or pasted, checked for shape as it is typed."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QFormLayout, QGroupBox, QHBoxLayout, QLineEdit, QPushButton, QVBoxLayout, QWidget

from gui.wizard.shared import CANCELLED, Output, PendingToken, WizardPage, log, log_view, wrapped_label
from worker.core.cancel import CancelToken
from worker.core.errors import ModalSetupError
from worker.modal import credentials, sign_in


class TokenPage(WizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Your Modal token")
        self.setSubTitle("Sign in with the browser, or paste a token from modal.com/settings/tokens.")
        self._browser_token: PendingToken | None = None

        layout = QVBoxLayout(self)
        self.env_note = wrapped_label(name="envNote")
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
        self.sign_in_status = wrapped_label(
            "Opens modal.com in your browser (runs `modal token new`); approve there and the token is saved "
            "for you.", name="signInStatus")
        browser_layout.addWidget(self.sign_in_status)
        self.sign_in_log = log_view("signInLog", 90)
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

        self.reason = wrapped_label(name="tokenReason")
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
        if self.task is not None:
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

        def work(output: Output, cancel: CancelToken) -> sign_in.SignInResult:
            return wiz.services.sign_in_with_browser(
                output, cancel=cancel, timeout_s=wiz.sign_in_timeout_s, profile=profile, server_url=wiz.server_url
            )

        self.task = wiz.start_task("sign-in", work, self._signed_in, self._sign_in_failed,
                                    lambda line: self.append_line(self.sign_in_log, str(line)))
        self._update_reason()

    def cancel_sign_in(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.sign_in_status.setText("Cancelling…")

    def _sign_in_done(self) -> None:
        self.task = None
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

"""The wizard itself: its pages in order, the services and timeouts it is given, and the background steps it
holds until their threads end (start_task, cancel_all)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar, cast

from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QWidget, QWizard

from gui.wizard.deploy_page import DeployPage
from gui.wizard.intro_page import IntroPage
from gui.wizard.shared import CANCELLED, INTRO, SAMPLE_PATH, Output, PendingToken, WizardServices, WizardTask
from gui.wizard.token_page import TokenPage
from gui.wizard.try_page import TryPage
from gui.wizard.verify_page import VerifyPage
from worker.core.cancel import CancelToken
from worker.core.options import DEFAULT_MODEL
from worker.modal import bounded, credentials, sign_in, warm
from worker.modal import deploy as deploying

Result = TypeVar("Result")


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
        self.tasks: list[WizardTask] = []

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
        fn: Callable[[Output, CancelToken], Result],
        on_success: Callable[[Result], None],
        on_failure: Callable[[str], None],
        on_line: Output | None = None,
    ) -> WizardTask:
        """Run fn(output, cancel) off the GUI thread; on_success(its result) or on_failure(one line) follows in
        the GUI thread, and on_line(each output) while it runs."""
        # No parent and no deleteLater: the wizard holds each task until its thread has ended, and nothing
        # connected to a task refers back to it, so dropping it deletes it here, in the GUI thread.
        task = WizardTask(name, fn)
        token = task.cancel_token
        if on_line is not None:
            task.line.connect(on_line)

        def succeeded(result: object) -> None:
            # an answer that arrives after Cancel was pressed counts as cancelled: nothing is saved
            if token.cancelled:
                on_failure(CANCELLED)
            else:
                on_success(cast(Result, result))  # what fn returned, through a Qt signal

        task.succeeded.connect(succeeded)
        task.failed.connect(on_failure)
        task.finished.connect(self._reap)
        self.tasks.append(task)
        task.start()
        return task

    def _reap(self) -> None:
        ended = self.sender()
        for task in list(self.tasks):
            if task is ended or task.isFinished():
                task.wait()  # `finished` comes just before the thread ends: let it end
                self.tasks.remove(task)

    def running_tasks(self) -> list[str]:
        return [task.name for task in self.tasks if task.isRunning()]

    def cancel_all(self, wait_ms: int = 15000) -> None:
        """Cancel every running step and wait for its thread (each stops within a few seconds)."""
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            task.wait(wait_ms)

    def done(self, result: int) -> None:
        self.cancel_all()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel_all()
        super().closeEvent(event)

"""Page 4: is the worker app deployed (and at this version)? Deploy it, then warm the model cache, log streamed."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout

from gui.wizard.shared import CANCELLED, Output, WizardPage, log, log_view, wrapped_label
from worker.backends.events import timing_line
from worker.core.cancel import CancelToken
from worker.modal import checks
from worker.modal import deploy as deploying


class DeployPage(WizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Deploy the worker app")
        self.setSubTitle("The T4 worker app goes into your Modal account once; later jobs call it by name.")
        self.app_state: checks.AppCheck | None = None
        self.deployed = False
        self.warmed = False
        layout = QVBoxLayout(self)
        self.status = wrapped_label(name="deployStatus")
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
        self.log_view = log_view("deployLog", 200)
        layout.addWidget(self.log_view, 1)
        self.deploy_button.clicked.connect(self.start_deploy)
        self.warm_button.clicked.connect(self.start_warm)
        self.cancel_button.clicked.connect(self.cancel)
        self._show_busy(False)

    def _kwargs(self) -> dict[str, Any]:
        token = self.wiz.token
        if token is None:
            return {"server_url": self.wiz.server_url}
        return {"token_id": token.token_id, "token_secret": token.secret, "server_url": self.wiz.server_url}

    def _show_busy(self, busy: bool) -> None:
        if self.deployed != self.isFinalPage():
            self.setFinalPage(self.deployed)  # deployed: Finish is offered here too; "Try it" stays optional
        self.deploy_button.setEnabled(not busy)
        self.warm_button.setEnabled(not busy and self.deployed)
        self.cancel_button.setEnabled(busy)

    def initializePage(self) -> None:
        self.log_view.clear()
        self.status.setText("Looking for the worker app in your Modal account…")
        self._show_busy(True)
        wiz = self.wiz
        kwargs = self._kwargs()

        def work(_output: Output, cancel: CancelToken) -> checks.AppCheck:
            return wiz.services.check_app(timeout_s=wiz.check_timeout_s, cancel=cancel, **kwargs)

        self.task = wiz.start_task("check-app", work, self._app_checked, self._failed)

    def _app_checked(self, state: checks.AppCheck) -> None:
        self.task = None
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
        self._show_busy(False)
        self.completeChanged.emit()

    def start_deploy(self) -> None:
        wiz = self.wiz
        token = wiz.token
        profile = token.profile if token is not None else None
        self.status.setText("Deploying… (the log follows below)")
        self._show_busy(True)

        def work(output: Output, cancel: CancelToken) -> deploying.DeployResult:
            return wiz.services.deploy(output, cancel=cancel, timeout_s=wiz.deploy_timeout_s,
                                       server_url=wiz.server_url, profile=profile)

        self.task = wiz.start_task("deploy", work, self._deployed, self._failed,
                                    lambda line: self.append_line(self.log_view, str(line)))

    def _deployed(self, result: deploying.DeployResult) -> None:
        self.task = None
        self.deployed = True
        self.deploy_button.setText("Redeploy")
        self.status.setText(f"Deployed {result}.")
        log.info("deployed %s", result)
        self._show_busy(False)
        self.completeChanged.emit()
        if self.wiz.warm_after_deploy:
            self.start_warm()

    def start_warm(self) -> None:
        wiz = self.wiz
        model = wiz.model
        self.status.setText(f"Warming the model cache: loading {model} on a T4 (a cold start can take a minute)…")
        self.append_line(self.log_view, f"warming the model cache Volume for {model}")
        self._show_busy(True)

        def work(_output: Output, cancel: CancelToken) -> dict[str, Any]:
            return wiz.services.warm_model_volume(model, timeout_s=wiz.warm_timeout_s, cancel=cancel,
                                                  server_url=wiz.server_url)

        self.task = wiz.start_task("warm", work, self._warmed, self._failed)

    def _warmed(self, timings: dict[str, Any]) -> None:
        self.task = None
        self.warmed = True
        line = timing_line(timings) if timings else "no timings"
        self.append_line(self.log_view, line)
        self.status.setText(f"Deployed, and {self.wiz.model} is in the model cache. {line}")
        self._show_busy(False)

    def _failed(self, message: str) -> None:
        name = self.task.name if self.task is not None else "step"
        self.task = None
        what = {"check-app": "The app check", "deploy": "Deploy", "warm": "Warming the model cache"}.get(name, "It")
        if message == CANCELLED:
            self.status.setText(f"{what} was cancelled." + (" The worker app is deployed." if self.deployed else ""))
        else:
            self.status.setText(f"{what} did not work: {message}")
        self.append_line(self.log_view, f"{name}: {message}")
        log.info("%s: %s", name, message)
        self._show_busy(False)
        self.completeChanged.emit()

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling…")

    def isComplete(self) -> bool:
        return self.deployed and self.task is None

    def cleanupPage(self) -> None:
        self.cancel()

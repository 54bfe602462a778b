"""Page 1: what Modal is, what it costs, that it is optional, and whether a token is already set."""

from __future__ import annotations

from PySide6.QtWidgets import QVBoxLayout

from gui.wizard.shared import WizardPage, wrapped_label
from worker.core.errors import ModalSetupError
from worker.modal import credentials
from worker.modal.cost import DEFAULT_T4_DOLLARS_PER_HOUR


class IntroPage(WizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Transcribe on Modal GPUs")
        self.setSubTitle("Optional: Whisper Desk works on this computer without any account.")
        layout = QVBoxLayout(self)
        layout.addWidget(wrapped_label(
            "Modal is a cloud service that can run Whisper Desk's transcription on NVIDIA T4 GPUs. "
            "Long files are cut into pieces that run side by side on several GPUs, so an hour of audio "
            "takes minutes instead of an hour."
        ))
        layout.addWidget(wrapped_label(
            "Modal bills the GPU time per second to your own Modal account "
            f"(a T4 is about ${DEFAULT_T4_DOLLARS_PER_HOUR:.2f} per GPU-hour). Nothing runs, and nothing is "
            "billed, unless you pick Modal for a job."
        ))
        layout.addWidget(wrapped_label(
            "You don't need this: without Modal, Whisper Desk transcribes on this computer, offline, "
            "with the model that ships with it."
        ))
        layout.addWidget(wrapped_label(
            "This wizard will:\n"
            "  1. connect your Modal token (sign in with the browser, or paste one),\n"
            "  2. check it with Modal,\n"
            "  3. deploy the Whisper Desk worker app to your Modal account,\n"
            "  4. optionally transcribe a short sample on a T4."
        ))
        self.status = wrapped_label(name="introStatus")
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

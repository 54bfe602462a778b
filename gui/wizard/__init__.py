"""The Modal setup wizard: from no token to a verified connection, a deployed T4 app and a first GPU transcript.

A thin layer over worker.modal (the same code as `whisper-desk check` and `whisper-desk deploy`):
every slow step runs in the background (gui.background), is bounded and can be cancelled; the GUI thread never waits on the
network. The token secret is never put in a label, a log view or a log record.

Tests and docs inject `server_url` (a loopback fake Modal server) and any of the service functions.

Owns: the pages (intro_page, token_page, verify_page, deploy_page, try_page), what they share (shared.py) and the
wizard that holds them (setup_wizard.py). May import: worker (worker.modal above all), and from gui only
gui.background and gui.resources. Inside, shared < the pages < setup_wizard: a page names the wizard only for types.
The rest of gui/, bench/ and the tests use what is exported here.
"""

from gui.wizard.deploy_page import DeployPage
from gui.wizard.intro_page import IntroPage
from gui.wizard.setup_wizard import ModalSetupWizard
from gui.wizard.shared import (
    CANCELLED,
    DEPLOY,
    INTRO,
    SAMPLE_PATH,
    TOKEN,
    TRY,
    VERIFY,
    PendingToken,
    WizardPage,
    WizardServices,
    WizardTask,
)
from gui.wizard.token_page import TokenPage
from gui.wizard.try_page import TryPage, transcribe_sample
from gui.wizard.verify_page import VerifyPage

__all__ = [
    "CANCELLED", "DEPLOY", "INTRO", "SAMPLE_PATH", "TOKEN", "TRY", "VERIFY",
    "DeployPage", "IntroPage", "ModalSetupWizard", "PendingToken", "TokenPage", "TryPage", "VerifyPage",
    "WizardPage", "WizardServices", "WizardTask", "transcribe_sample",
]

"""Transition shim: the code moved to the worker.modal package (credentials, checks, deploy, sign_in, warm,
errors). Nothing in the app imports this module any more; it goes once the last tests move."""

from worker.errors import ModalSetupError  # noqa: F401
from worker.modal.bounded import CHECK_TIMEOUT_CAP_S  # noqa: F401
from worker.modal.checks import AppCheck, CheckResult, check_app, check_credentials  # noqa: F401
from worker.modal.credentials import *  # noqa: F401,F403
from worker.modal.credentials import os  # noqa: F401
from worker.modal.deploy import DEPLOY_TIMEOUT_S, DeployResult, deploy, run_streamed  # noqa: F401
from worker.modal.errors import explain_modal_error  # noqa: F401
from worker.modal.settings import APP_NAME, CLASS_NAME, VERSION_TAG, WORKER_API_VERSION  # noqa: F401
from worker.modal.sign_in import SIGN_IN_TIMEOUT_S, SignInResult, sign_in_with_browser  # noqa: F401
from worker.modal.warm import WARM_TIMEOUT_S, warm_model_volume  # noqa: F401


def local_worker_version() -> str:
    return WORKER_API_VERSION

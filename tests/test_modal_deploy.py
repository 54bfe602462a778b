"""`whisper-desk deploy` and `whisper-desk check` through the real `modal` client and CLI, against the loopback
control plane (tests/modal_control_plane.py): what is deployed, and what check says before and after."""

from __future__ import annotations

import subprocess
import sys

from worker.modal.settings import APP_NAME, CLASS_NAME, VERSION_TAG, WORKER_API_VERSION, DeploySettings

CLI_TIMEOUT_S = 180


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
    )


def test_check_says_not_deployed_then_deploy_then_deployed(modal_plane):
    before = run_cli("check")
    assert "not deployed" in before.stdout + before.stderr, before
    deployed = run_cli("deploy")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    after = run_cli("check")
    out = after.stdout + after.stderr
    assert after.returncode == 0, out
    assert f"{APP_NAME} is deployed at worker API v{WORKER_API_VERSION}" in out
    assert "not deployed" not in out
    assert modal_plane.deployment.app_name == APP_NAME

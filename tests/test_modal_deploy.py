"""`whisper-desk deploy` and `whisper-desk check` through the real `modal` client and CLI, against the loopback
control plane (tests/modal_control_plane.py): what is deployed, and what check says before and after; the
version pin and the profile a deploy uses (issue 9, defects 1, 2 and 6)."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from worker.modal import credentials
from worker.modal.deploy import deploy
from worker.modal.settings import APP_NAME, VERSION_TAG, VOLUME_NAME, WORKER_API_VERSION, DeploySettings

CLI_TIMEOUT_S = 180
ROOT = Path(__file__).resolve().parent.parent


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
    # the deploy went through modal's own steps, in order, and nothing was built
    rpcs = modal_plane.rpcs
    steps = ["AppGetByDeploymentName", "AppCreate", "FunctionPrecreate", "VolumeGetOrCreate", "ImageGetOrCreate",
             "FunctionCreate", "ClassCreate", "AppPublish"]
    positions = [rpcs.index(step) for step in steps]
    assert positions == sorted(positions), rpcs
    assert "ImageJoinStreaming" not in rpcs


def test_what_is_deployed_is_a_t4_class_with_coherent_limits(deployed_modal):
    deployment = deployed_modal.deployment
    settings = DeploySettings()
    assert deployment.app_name == APP_NAME
    assert deployment.tags == {VERSION_TAG: WORKER_API_VERSION}  # the API tag check_app reads
    function = deployment.function("Transcriber.*")
    assert (function.resources.gpu_config.gpu_type, function.resources.gpu_config.count) == ("T4", 1)
    assert function.is_class and list(function.method_definitions) == ["transcribe"]
    assert [p.name for p in function.class_parameter_info.schema] == ["model"]
    # the weights Volume, mounted where the worker looks for it
    assert deployment.volumes == [VOLUME_NAME]
    assert [mount.mount_path for mount in function.volume_mounts] == ["/models"]
    # scale-down, max containers and retries as set, and limits that do not contradict each other
    assert function.autoscaler_settings.max_containers == settings.max_containers
    assert function.autoscaler_settings.scaledown_window == settings.scaledown_s
    assert function.retry_policy.retries == settings.retries
    assert (function.timeout_secs, function.startup_timeout_secs) == (settings.timeout_s, settings.startup_timeout_s)
    # the pinned packages, and the code reaching the container once, as the worker package
    commands = " ".join(deployment.image_commands())
    for package in ("openai-whisper==20250625", "torch==2.13.0", "soundfile==", "numpy=="):
        assert package in commands, commands
    assert "ffmpeg" in commands
    assert any(path.startswith("/root/worker/") for path in deployment.mounts), deployment.mounts[:5]


def test_the_client_waits_longer_than_modal_may_take_for_one_call(deployed_modal):
    """Defect 6: the client's call limit was 600 s, under the 900 s a cold start may take downloading weights."""
    from worker.modal.fanout import ModalBackend

    function = deployed_modal.deployment.function("Transcriber.*")
    longest_run = function.startup_timeout_secs + function.timeout_secs * (function.retry_policy.retries + 1)
    assert ModalBackend().call_timeout_s > longest_run


def test_the_modal_pin_is_the_range_the_tests_run():
    """Defect 1: `modal>=1.0` let in versions whose server URL parsing, App tags and startup_timeout differ."""
    from packaging.requirements import Requirement

    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    spec = next(Requirement(m) for m in re.findall(r'"(modal[<>=!~][^"]*)"', text))
    assert version("modal") in spec.specifier
    for too_old in ("1.0.0", "1.4.0", "1.5.9"):
        assert too_old not in spec.specifier, spec
    assert "2.0.0" not in spec.specifier  # an untested major version is not allowed in either


@pytest.fixture
def two_profiles(modal_plane, monkeypatch):
    """Profile a (active) holds a token the plane rejects; profile b holds the plane's token."""
    for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET"):
        monkeypatch.delenv(name)
    credentials.write_token("ak-" + "a" * 22, "as-" + "a" * 22, profile="a", activate=True)
    credentials.write_token(modal_plane.token_id, modal_plane.token_secret, profile="b", activate=False)
    return modal_plane


def test_the_profile_asked_for_is_the_profile_used(two_profiles):
    """Defect 2: resolve_credentials(profile) ignored the profile and used the active one."""
    found = credentials.resolve_credentials("b")
    assert found is not None and found.token_id == two_profiles.token_id and found.source == "profile b"
    assert credentials.resolve_credentials().source == "profile a"
    lines: list[str] = []
    result = deploy(lines.append, profile="b", timeout_s=120)
    assert result.version == WORKER_API_VERSION
    assert not [line for line in lines if "could not record" in line], lines
    assert two_profiles.deployment.tags[VERSION_TAG] == WORKER_API_VERSION
    assert "as-" + "a" * 22 not in "\n".join(lines)


def test_the_client_call_limit_follows_the_deploy_settings_and_ignores_bad_ones(monkeypatch):
    from worker.modal.fanout import ModalBackend

    monkeypatch.setenv("WHISPER_DESK_STARTUP_TIMEOUT_S", "1800")
    assert ModalBackend().call_timeout_s == DeploySettings(startup_timeout_s=1800).call_timeout_s
    monkeypatch.setenv("WHISPER_DESK_MAX_CONTAINERS", "many")  # deploy reports it; a job is not stopped by it
    assert ModalBackend().call_timeout_s == DeploySettings().call_timeout_s

"""The deployed app's limits, through the real `modal` client and CLI against the loopback control plane
(issue 17, defect 5): a job's call limit comes from the deployed function, not this computer's environment,
and a setting Modal would refuse at deploy is refused by `whisper-desk deploy` in one line naming it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.core.cancel import CancelToken
from worker.core.options import TranscriptionOptions
from worker.modal.deploy import deploy
from worker.modal.fanout import ModalBackend
from worker.modal.remote import ModalRemote
from worker.modal.settings import CALL_MARGIN_S

ROOT = Path(__file__).resolve().parent.parent
LIMITS = {"WHISPER_DESK_TIMEOUT_S": "45", "WHISPER_DESK_STARTUP_TIMEOUT_S": "50", "WHISPER_DESK_RETRIES": "1"}


def test_a_jobs_call_limit_comes_from_the_deployed_function(modal_plane, jfk, monkeypatch):
    """Defect 5: the client's wait limit was read from this computer's environment; a job started elsewhere (or
    after the variables changed) waited for the wrong time."""
    for name, value in LIMITS.items():
        monkeypatch.setenv(name, value)
    lines: list[str] = []
    deploy(lines.append, timeout_s=120)
    function = modal_plane.deployment.function("Transcriber.*")
    assert (function.timeout_secs, function.startup_timeout_secs, function.retry_policy.retries) == (45, 50, 1)
    for name in LIMITS:  # this computer says something else now
        monkeypatch.setenv(name, "3" if name == "WHISPER_DESK_RETRIES" else "900")
    expected = 50 + 45 * (1 + 1) + CALL_MARGIN_S

    remote = ModalRemote()
    import asyncio

    async def connect() -> None:
        await remote.open("tiny.en")
        await remote.aclose()

    asyncio.run(connect())
    assert remote.deployed is not None and remote.deployed.call_timeout_s == expected

    transcript = ModalBackend().transcribe(jfk, TranscriptionOptions(language="en"), lambda e: None, CancelToken())
    assert transcript.timings["call_timeout_s"] == expected
    assert ModalBackend(call_timeout_s=30.0).transcribe(
        jfk, TranscriptionOptions(language="en"), lambda e: None, CancelToken()
    ).timings["call_timeout_s"] == 30.0  # a limit given on purpose still wins


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("WHISPER_DESK_SCALEDOWN_S", "0", "WHISPER_DESK_SCALEDOWN_S must be from 2 to 3600 seconds (Modal's limit), not 0"),
        ("WHISPER_DESK_SCALEDOWN_S", "1", "WHISPER_DESK_SCALEDOWN_S must be from 2 to 3600 seconds (Modal's limit), not 1"),
        ("WHISPER_DESK_MAX_CONTAINERS", "0", "WHISPER_DESK_MAX_CONTAINERS must be at least 1 (0 would mean no limit on Modal), not 0"),
        ("WHISPER_DESK_RETRIES", "11", "WHISPER_DESK_RETRIES must be from 0 to 10, not 11"),
    ],
)
def test_a_setting_modal_refuses_is_refused_before_deploying_in_one_line(modal_plane, monkeypatch, variable, value, says):
    """Defect 5: a scale-down of 0 or 1 failed inside `modal deploy` with its traceback, and
    WHISPER_DESK_MAX_CONTAINERS=0 deployed an app with no container limit at all."""
    monkeypatch.setenv(variable, value)
    run = subprocess.run([sys.executable, "-m", "worker.cli", "deploy"], cwd=ROOT, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode != 0
    output = (run.stdout + run.stderr).strip().splitlines()
    assert output == [f"deploy failed: {says}"], output
    assert modal_plane.count("AppCreate") == 0 and not modal_plane.deployments  # nothing reached Modal

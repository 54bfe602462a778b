"""Which Modal environment and which credentials, as modal 1.6.4 reads them, through the real `modal` client
and CLI against the loopback control plane (issue 17, defects 3 and 7): a profile naming an environment gets
its deploy, its check and its jobs in that environment; OAuth credentials (MODAL_OAUTH_* or a profile's
oauth_* keys) work wherever a token does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from speech_text import JFK_PHRASE, normalise

from worker.core.cancel import CancelToken
from worker.core.errors import ModalSetupError
from worker.core.options import TranscriptionOptions
from worker.modal import checks, credentials
from worker.modal.deploy import deploy
from worker.modal.fanout import ModalBackend
from worker.modal.settings import APP_NAME

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = TranscriptionOptions(language="en", beam_size=1)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture
def profile_only(modal_plane, monkeypatch):
    """The plane's token only in the Modal config file (no MODAL_TOKEN_* variables), as a user has it."""
    for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_ENVIRONMENT", "MODAL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return modal_plane


def test_a_profile_with_an_environment_deploys_checks_and_runs_jobs_there(profile_only, jfk):
    """Defect 3: `modal deploy` deployed to the profile's environment, while the in-process look-ups used the
    environment modal read when it was first imported, so `check` said "not deployed" until a restart."""
    import modal  # noqa: F401 - imported before the profile exists, as in a window that is already open

    plane = profile_only
    plane.environments["dev"] = {}  # the workspace has a dev environment (`modal environment create dev`)
    credentials.config_path().write_text(
        f'[work]\ntoken_id = "{plane.token_id}"\ntoken_secret = "{plane.token_secret}"\n'
        'environment = "dev"\nactive = true\n', encoding="utf-8"
    )
    lines: list[str] = []
    result = deploy(lines.append, timeout_s=120)
    assert result.environment == "dev" and "in environment dev" in str(result)
    assert any("to environment dev" in line for line in lines), lines
    assert plane.environment_of(APP_NAME) == ["dev"]  # not in main

    app = checks.check_app()
    assert app.state == "deployed" and app.environment == "dev", app
    assert "(environment dev)" in app.detail and app.up_to_date
    shown = cli("check")
    assert shown.returncode == 0 and "(environment dev)" in shown.stdout, shown.stdout + shown.stderr

    transcript = ModalBackend().transcribe(jfk, ENGLISH, lambda e: None, CancelToken())
    assert JFK_PHRASE in normalise(transcript.text)
    assert transcript.timings["environment"] == "dev"
    looked_up = {request.environment_name for request in plane.requests_of("ClassGet")}
    assert looked_up == {"dev"}, looked_up


def test_an_app_deployed_in_another_environment_is_not_found_here(profile_only):
    plane = profile_only
    credentials.config_path().write_text(
        f'[work]\ntoken_id = "{plane.token_id}"\ntoken_secret = "{plane.token_secret}"\nactive = true\n',
        encoding="utf-8",
    )
    plane.environments["dev"] = {}
    deploy(lambda line: None, timeout_s=120)  # into main (the profile names no environment)
    app = checks.check_app(environment="dev")
    assert app.state == "not deployed" and "the Modal environment dev" in app.detail, app


OAUTH_PROFILE = """[work]
oauth_refresh_token = "{0}"
oauth_client_id = "{1}"
oauth_client_secret = "{2}"
active = true
"""


def test_oauth_credentials_in_the_environment_check_deploy_and_run_a_job(profile_only, jfk, monkeypatch):
    """Defect 7: modal 1.6.4 accepts MODAL_OAUTH_*; resolve_credentials read only the token, so such a user was
    told "no token"."""
    plane = profile_only
    for name, value in plane.oauth_env().items():
        monkeypatch.setenv(name, value)
    found = credentials.resolve_credentials()
    assert found is not None and found.oauth is not None and found.source == "environment"
    assert found.oauth.client_id == plane.oauth[1]
    result = checks.check_credentials()
    assert result.ok, result
    assert f"OAuth client {plane.oauth[1]} accepted by workspace ada-lovelace" in result.detail
    for secret in (plane.oauth[0], plane.oauth[2]):
        assert secret not in result.detail and secret not in repr(found)

    lines: list[str] = []
    deploy(lines.append, timeout_s=120)
    assert plane.deployment.published
    assert not any(secret in line for line in lines for secret in (plane.oauth[0], plane.oauth[2]))
    assert checks.check_app().state == "deployed"
    transcript = ModalBackend().transcribe(jfk, ENGLISH, lambda e: None, CancelToken())
    assert JFK_PHRASE in normalise(transcript.text)


def test_oauth_keys_in_a_profile_are_read_as_modal_reads_them(profile_only):
    plane = profile_only
    config = credentials.config_path()
    config.write_text(OAUTH_PROFILE.format(*plane.oauth), encoding="utf-8")
    found = credentials.resolve_credentials()
    assert found is not None and found.oauth is not None and found.source == "profile work"
    assert checks.check_credentials().ok
    shown = cli("check")
    assert "OAuth client wd-oauth-client accepted" in shown.stdout, shown.stdout + shown.stderr
    assert plane.oauth[0] not in shown.stdout + shown.stderr


def test_a_token_and_oauth_together_are_refused_as_modal_refuses_them(profile_only, monkeypatch):
    plane = profile_only
    credentials.config_path().write_text(OAUTH_PROFILE.format(*plane.oauth), encoding="utf-8")
    monkeypatch.setenv("MODAL_TOKEN_ID", plane.token_id)
    with pytest.raises(ModalSetupError) as caught:
        credentials.resolve_credentials()
    assert "both a Modal token and OAuth credentials" in str(caught.value) and "\n" not in str(caught.value)
    result = checks.check_credentials()
    assert result.state == "missing" and "both a Modal token and OAuth credentials" in result.detail
    monkeypatch.delenv("MODAL_TOKEN_ID")
    config = credentials.config_path()
    config.write_text(config.read_text().replace('oauth_client_secret = "', 'oauth_unused = "'), encoding="utf-8")
    with pytest.raises(ModalSetupError) as caught:
        credentials.resolve_credentials()
    assert "exactly one of a client secret or a JWT key" in str(caught.value)

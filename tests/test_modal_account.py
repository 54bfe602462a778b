"""Modal credentials, the bounded checks against a loopback Modal server, deploy/sign-in subprocesses, and
the one-line explanations of Modal's exceptions."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from modal_control_plane import ControlPlane, DeployedApp, free_port, modal_reads

from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, ModalSetupError
from worker.modal import checks, credentials, settings, sign_in, warm
from worker.modal import deploy as deploying
from worker.modal import errors as modal_errors

GOOD_ID = "ak-goodtoken0000000000"
GOOD_SECRET = "as-goodsecret000000000"
BAD_ID = "ak-wrongtoken111111111"
BAD_SECRET = "as-wrongsecret11111111"
SECRETS = (GOOD_SECRET, BAD_SECRET)


@pytest.fixture(scope="module")
def server():
    with ControlPlane(token_id=GOOD_ID, token_secret=GOOD_SECRET) as fake:
        yield fake


@pytest.fixture(autouse=True)
def reset_server(request):
    if "server" in request.fixturenames:
        fake = request.getfixturevalue("server")
        fake.apps.clear()
        fake.hello_delay_s = 0.0
        fake.token_flow_never_finishes = False
    yield


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text), f"secret leaked into: {text!r}"


# --- credential check against the loopback server -------------------------------------------------------


def test_good_token_is_accepted_with_its_workspace(server):
    result = checks.check_credentials(token_id=GOOD_ID, token_secret=GOOD_SECRET, server_url=server.url)
    assert result.state == "ok"
    assert result.workspace == "ada-lovelace"
    assert "ada-lovelace" in result.detail and GOOD_ID in result.detail
    assert "ClientHello" in server.rpcs
    assert_no_secret(result, result.detail, repr(result))


def test_saved_profile_and_server_url_from_the_environment(server, monkeypatch):
    credentials.write_token(GOOD_ID, GOOD_SECRET, profile="whisper-desk")
    monkeypatch.setenv("MODAL_SERVER_URL", server.url)
    result = checks.check_credentials()
    assert result.state == "ok"
    assert result.source == "profile whisper-desk"


def test_bad_token_is_rejected_plainly(server):
    result = checks.check_credentials(token_id=BAD_ID, token_secret=BAD_SECRET, server_url=server.url)
    assert result.state == "rejected"
    assert "rejected" in result.detail and "setup wizard" in result.detail
    assert_no_secret(result, result.detail)


def test_environment_token_wins_over_the_saved_profile(server, monkeypatch):
    credentials.write_token(GOOD_ID, GOOD_SECRET, profile="default")
    monkeypatch.setenv("MODAL_TOKEN_ID", BAD_ID)
    monkeypatch.setenv("MODAL_TOKEN_SECRET", BAD_SECRET)
    found = credentials.resolve_credentials()
    assert found.token_id == BAD_ID and found.source == "environment"
    assert credentials.env_credentials_set()
    result = checks.check_credentials(server_url=server.url)
    assert result.state == "rejected" and result.source == "environment"


def test_closed_port_is_unreachable_within_the_ten_second_cap():
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = checks.check_credentials(timeout_s=60, token_id=GOOD_ID, token_secret=GOOD_SECRET, server_url=url)
    elapsed = time.monotonic() - started
    assert result.state == "unreachable"
    assert elapsed < 12, f"check took {elapsed:.1f} s"
    assert "network" in result.detail
    assert_no_secret(result.detail)
    # the check closed its client: modal is not left retrying the connect for another minute (a task that
    # later fails unretrieved and prints a traceback into whatever runs next)
    assert modal_connect_attempts() == []


def modal_connect_attempts() -> list[str]:
    """Connect attempts still running on modal's own event loop (the one synchronicity runs every call on)."""
    import asyncio

    from modal._utils.async_utils import synchronizer

    loop = synchronizer._get_loop(start=False)
    if loop is None:
        return []

    async def pending() -> list[str]:
        return [repr(task) for task in asyncio.all_tasks() if not task.done()
                and "create_channel_with_fallbacks" in repr(task.get_coro())]

    return asyncio.run_coroutine_threadsafe(pending(), loop).result(timeout=5)


def test_missing_token_is_reported_at_once():
    started = time.monotonic()
    result = checks.check_credentials()
    assert result.state == "missing"
    assert time.monotonic() - started < 5.0  # no network wait (10 s); generous for a loaded machine
    assert "setup wizard" in result.detail and "modal token new" in result.detail
    assert not credentials.has_credentials()
    assert checks.check_app().state == "unknown"


def test_malformed_token_is_not_sent(server):
    calls_before = len(server.rpcs)
    result = checks.check_credentials(token_id="ak-short", token_secret=GOOD_SECRET, server_url=server.url)
    assert result.state == "rejected" and "ak-" in result.detail
    assert len(server.rpcs) == calls_before


def test_cancel_stops_a_slow_check(server):
    server.hello_delay_s = 8.0
    cancel = CancelToken()
    threading.Timer(0.3, cancel.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        checks.check_credentials(token_id=GOOD_ID, token_secret=GOOD_SECRET, server_url=server.url, cancel=cancel)
    assert time.monotonic() - started < 3


def test_check_from_a_thread_with_a_running_event_loop(server):
    import asyncio

    async def inside_a_loop():
        return checks.check_credentials(token_id=GOOD_ID, token_secret=GOOD_SECRET, server_url=server.url)

    assert asyncio.run(inside_a_loop()).state == "ok"


# --- the deployed app -----------------------------------------------------------------------------------


def test_check_app_states(server):
    kwargs = dict(token_id=GOOD_ID, token_secret=GOOD_SECRET, server_url=server.url)
    missing = checks.check_app(expected_version="3", **kwargs)
    assert missing.state == "not deployed" and "whisper-desk deploy" in missing.detail

    server.apps["whisper-desk"] = DeployedApp(tags={settings.VERSION_TAG: "3"})
    same = checks.check_app(expected_version="3", **kwargs)
    assert same.state == "deployed" and same.deployed_version == "3" and same.up_to_date

    older = checks.check_app(expected_version="4", **kwargs)
    assert older.state == "deployed" and not older.up_to_date
    assert "v3" in older.detail and "v4" in older.detail and "whisper-desk deploy" in older.detail

    server.apps["whisper-desk"] = DeployedApp(tags={})
    unversioned = checks.check_app(expected_version="3", **kwargs)
    assert unversioned.state == "deployed" and unversioned.deployed_version is None and not unversioned.up_to_date

    server.apps["whisper-desk"] = DeployedApp(classes=("SomethingElse",))
    assert checks.check_app(expected_version="3", **kwargs).state == "not deployed"

    rejected = checks.check_app(token_id=BAD_ID, token_secret=BAD_SECRET, server_url=server.url)
    assert rejected.state == "unknown" and "setup wizard" in rejected.detail
    assert_no_secret(rejected.detail)


# --- the config file ------------------------------------------------------------------------------------


def test_write_token_is_private_keeps_profiles_and_modal_reads_it(isolated_dirs):
    config = credentials.config_path()
    config.write_text('[work]\ntoken_id = "ak-worktoken00000000"\ntoken_secret = "as-worksecret0000000"\nactive = true\n'
                      'loglevel = "INFO"\n')
    os.chmod(config, 0o644)
    written = credentials.write_token(GOOD_ID, GOOD_SECRET, profile="whisper-desk")
    assert written == config
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    profiles = credentials.read_profiles()
    assert profiles["work"]["token_id"] == "ak-worktoken00000000" and profiles["work"]["loglevel"] == "INFO"
    assert "active" not in profiles["work"]
    assert profiles["whisper-desk"] == {"token_id": GOOD_ID, "token_secret": GOOD_SECRET, "active": True}
    assert credentials.active_profile() == "whisper-desk"
    seen = modal_reads(config)
    assert seen == {"profiles": ["whisper-desk", "work"], "active": "whisper-desk", "token_id": GOOD_ID, "secret_set": True}
    assert sorted(p.name for p in config.parent.iterdir() if "modal" in p.name) == [".modal.toml"]


def test_write_token_without_activating_keeps_the_active_profile():
    credentials.write_token(GOOD_ID, GOOD_SECRET, profile="default")
    credentials.write_token(BAD_ID, BAD_SECRET, profile="spare", activate=False)
    profiles = credentials.read_profiles()
    assert profiles["default"]["active"] is True and "active" not in profiles["spare"]
    assert credentials.resolve_credentials().token_id == GOOD_ID


def test_first_profile_is_created_private_and_active():
    config = credentials.config_path()
    assert not config.exists()
    credentials.write_token(GOOD_ID, GOOD_SECRET, activate=False)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert credentials.read_profiles()["default"]["active"] is True
    assert modal_reads(config)["token_id"] == GOOD_ID


def test_a_failed_write_leaves_the_old_file_whole(monkeypatch):
    config = credentials.config_path()
    credentials.write_token(GOOD_ID, GOOD_SECRET, profile="default")
    before = config.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(credentials.os, "replace", broken_replace)
    with pytest.raises(OSError):
        credentials.write_token(BAD_ID, BAD_SECRET, profile="other")
    assert config.read_bytes() == before
    assert [p.name for p in config.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_broken_config_is_reported_not_overwritten():
    config = credentials.config_path()
    config.write_text("this is [not toml\n")
    with pytest.raises(ModalSetupError) as info:
        credentials.write_token(GOOD_ID, GOOD_SECRET)
    assert ".modal.toml" in str(info.value) and "\n" not in str(info.value)
    assert config.read_text() == "this is [not toml\n"
    assert checks.check_credentials().state == "missing"


def test_token_shape_reasons_never_echo_the_secret():
    assert credentials.validate_token_shape(GOOD_ID, GOOD_SECRET) is None
    cases = [
        ("", GOOD_SECRET, "Token ID"),
        ("xk-abcdefghijk", GOOD_SECRET, "ak-"),
        (GOOD_SECRET, GOOD_ID, "secret"),
        (GOOD_ID, "", "Token Secret"),
        (GOOD_ID, "zz-abcdefghijk", "as-"),
        (GOOD_ID, "as-has space in it", "no spaces"),
        ("ak-abc", GOOD_SECRET, "at least 8"),
    ]
    for token_id, secret, expected in cases:
        reason = credentials.validate_token_shape(token_id, secret)
        assert reason and expected in reason, (token_id, reason)
        assert_no_secret(reason)
    with pytest.raises(ModalSetupError) as info:
        credentials.write_token(GOOD_ID, "as-x y", profile="p")
    assert "as-x y" not in str(info.value)
    assert credentials.validate_profile_name("whisper-desk") is None and credentials.validate_profile_name("a b")


def test_secret_never_prints():
    secret = credentials.Secret(GOOD_SECRET)
    assert str(secret) == repr(secret) == f"{secret}" == "as-****"
    assert secret.reveal() == GOOD_SECRET
    found = credentials.Credentials(GOOD_ID, secret, "profile x")
    assert_no_secret(repr(found), str(found))
    assert credentials.scrub(f"header x-modal-token-secret: {GOOD_SECRET} end") == "header x-modal-token-secret: as-**** end"
    assert credentials.scrub("custom s3cr3t-value here", "s3cr3t-value") == "custom **** here"


# --- explain_modal_error ----------------------------------------------------------------------------------


def modal_exception_classes():
    import modal.exception as me

    classes = [
        obj for obj in vars(me).values()
        if isinstance(obj, type) and issubclass(obj, me.Error) and obj.__module__ == me.__name__
    ]
    return classes + [me.InputCancellation]


def test_every_modal_exception_gets_one_line_saying_what_to_do():
    classes = modal_exception_classes()
    assert len(classes) > 30
    for klass in classes:
        text = f"something happened with {GOOD_SECRET}\nsecond line"
        exc = klass(text, "im-123") if klass.__name__ == "ImageBuildError" else klass(text)
        message = modal_errors.explain_modal_error(exc)
        assert message and "\n" not in message, klass
        assert ": " in message, (klass, message)
        assert_no_secret(message)
        if klass.__name__ not in ("Error",):
            assert "Modal reported an error" not in message, (klass.__name__, message)


def test_explanations_for_the_common_failures():
    import modal.exception as me

    expected = {
        me.AuthError: "setup wizard",
        me.NotFoundError: "whisper-desk deploy",
        me.ConnectionError: "network",
        me.FunctionTimeoutError: "use shorter chunks or a longer timeout",
        me.ResourceExhaustedError: "wait a minute",
        me.InputCancellation: "run the job again",
        me.RemoteError: "try again",
        me.ExecutionError: "whisper-desk deploy",
        me.InvalidError: "whisper-desk deploy",
        me.ImageBuildError: "deploy log",
        me.ServiceError: "try again",
        me.VersionError: "pip install -U modal",
    }
    for klass, phrase in expected.items():
        exc = klass("x", "im-1") if klass is me.ImageBuildError else klass("x")
        assert phrase in modal_errors.explain_modal_error(exc), klass.__name__
    token_missing = me.AuthError("Token missing. Could not authenticate client. If you have token credentials...")
    assert modal_errors.explain_modal_error(token_missing) == "no Modal token is set: run the setup wizard (or `modal token new`)"
    assert "network" in modal_errors.explain_modal_error(TimeoutError())
    assert "network" in modal_errors.explain_modal_error(ConnectionRefusedError(111, "Connection refused"))
    assert modal_errors.explain_modal_error(ModalSetupError("already one line")) == "already one line"


def test_explains_the_errors_modal_really_raises(server):
    import asyncio

    import grpclib
    import modal
    from modal_proto import api_pb2

    async def hello(secret: str) -> None:
        client = modal.Client(server.url, api_pb2.CLIENT_TYPE_CLIENT, (BAD_ID, secret))
        async with client:
            await client.hello.aio()

    with pytest.raises(modal.exception.AuthError) as info:
        asyncio.run(hello(BAD_SECRET))
    assert "setup wizard" in modal_errors.explain_modal_error(info.value)
    bare = grpclib.GRPCError(grpclib.Status.NOT_FOUND, "no such app")
    assert "whisper-desk deploy" in modal_errors.explain_modal_error(bare)


# --- deploy and sign-in subprocesses -----------------------------------------------------------------------


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "fake_cli.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def test_deploy_streams_scrubbed_output_and_reports_the_url(tmp_path):
    lines: list[str] = []
    command = script(tmp_path, f"""
        import sys, time
        print("Building image im-123")
        print("token {GOOD_SECRET} must not show", file=sys.stderr)
        time.sleep(0.2)
        print("\\x1b[32m✓\\x1b[0m App deployed in 3.1s! 🎉")
        print("View Deployment: https://modal.com/apps/ada/main/deployed/whisper-desk")
    """)
    result = deploying.deploy(lines.append, command=command, timeout_s=30)
    assert result.url == "https://modal.com/apps/ada/main/deployed/whisper-desk"
    assert result.app_name == "whisper-desk"
    assert "Building image im-123" in lines and "✓ App deployed in 3.1s! 🎉" in lines
    assert "token as-**** must not show" in lines
    assert_no_secret(*lines, str(result))
    assert "whisper-desk" in str(result)


def test_deploy_records_the_worker_version_for_check_app(server, tmp_path):
    credentials.write_token(GOOD_ID, GOOD_SECRET, profile="whisper-desk")
    command = script(tmp_path, "print('App deployed')\n")
    server.apps["whisper-desk"] = DeployedApp(tags={"team": "audio"})
    assert not checks.check_app(server_url=server.url, expected_version="7").up_to_date
    lines: list[str] = []
    result = deploying.deploy(lines.append, command=command, server_url=server.url, profile="whisper-desk", version="7")
    assert result.version == "7" and "worker API v7" in str(result)
    assert server.apps["whisper-desk"].tags == {"team": "audio", settings.VERSION_TAG: "7"}
    assert f"recorded worker API v7 on the app (tag {settings.VERSION_TAG})" in lines
    assert checks.check_app(server_url=server.url, expected_version="7").up_to_date

    server.apps.clear()  # the version cannot be recorded: a note, not a failure
    lines.clear()
    assert deploying.deploy(lines.append, command=command, server_url=server.url, version="7").version == "7"
    assert any(line.startswith("note: could not record the worker API version") for line in lines)
    assert_no_secret(*lines)


def test_deploy_without_a_token_says_to_run_the_wizard(tmp_path):
    app = tmp_path / "tiny_app.py"
    app.write_text("import modal\napp = modal.App('whisper-desk-test')\n\n@app.function()\ndef f():\n    return 1\n")
    lines: list[str] = []
    started = time.monotonic()
    with pytest.raises(ModalSetupError) as info:
        deploying.deploy(lines.append, command=[sys.executable, "-m", "modal", "deploy", str(app)], timeout_s=60)
    assert str(info.value) == "deploy failed: no Modal token is set: run the setup wizard (or `modal token new`)"
    assert any("Token missing" in line for line in lines)
    assert time.monotonic() - started < 30


def test_deploy_failure_is_one_line(tmp_path):
    command = script(tmp_path, """
        import sys
        print("Traceback (most recent call last):", file=sys.stderr)
        print("modal.exception.InvalidError: Image build for im-1 failed", file=sys.stderr)
        sys.exit(1)
    """)
    with pytest.raises(ModalSetupError) as info:
        deploying.deploy(lambda line: None, command=command, timeout_s=30)
    assert str(info.value) == "deploy failed: Image build for im-1 failed"


def test_deploy_cancel_and_timeout_stop_the_process(tmp_path):
    pid_file = tmp_path / "pid"
    command = script(tmp_path, f"""
        import os, time
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print("started", flush=True)
        time.sleep(60)
    """)
    cancel = CancelToken()
    lines: list[str] = []

    def log(line: str) -> None:
        lines.append(line)
        if line == "started":
            cancel.cancel()

    started = time.monotonic()
    with pytest.raises(Cancelled):
        deploying.deploy(log, cancel=cancel, command=command, timeout_s=60)
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()

    with pytest.raises(ModalSetupError) as info:
        deploying.deploy(lambda line: None, command=command, timeout_s=1.5)
    assert "did not finish within 1.5 s" in str(info.value)


def test_sign_in_with_browser_runs_modal_token_new(server, monkeypatch):
    monkeypatch.setenv("BROWSER", "true")  # a "browser" that opens nothing
    config = credentials.config_path()
    config.write_text('[work]\ntoken_id = "ak-worktoken00000000"\ntoken_secret = "as-worksecret0000000"\nactive = true\n')
    lines: list[str] = []
    result = sign_in.sign_in_with_browser(lines.append, profile="whisper-desk", server_url=server.url, timeout_s=60)
    assert result.profile == "whisper-desk" and result.token_id == GOOD_ID
    assert any("https://modal.invalid/token-flow/tf-fake" in line for line in lines)
    assert any("FAKE-CODE" in line for line in lines)
    assert_no_secret(*lines)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    profiles = credentials.read_profiles()
    assert profiles["work"]["token_id"] == "ak-worktoken00000000"
    assert profiles["whisper-desk"]["token_secret"] == GOOD_SECRET
    # the user's active profile stays theirs (issue 17): the modal CLI still uses work, Whisper Desk the new one
    assert profiles["work"]["active"] is True and "active" not in profiles["whisper-desk"]
    assert modal_reads(config)["active"] == "work"
    assert credentials.active_profile() == "whisper-desk"
    assert checks.check_credentials(server_url=server.url).state == "ok"


@pytest.mark.parametrize("existing", [False, True], ids=["no-config", "existing-config"])
def test_cancelled_sign_in_leaves_the_config_as_it_was(server, monkeypatch, existing):
    monkeypatch.setenv("BROWSER", "true")
    server.token_flow_never_finishes = True
    config = credentials.config_path()
    if existing:
        credentials.write_token(GOOD_ID, GOOD_SECRET, profile="work")
    before = config.read_bytes() if existing else None
    cancel = CancelToken()

    def log(line: str) -> None:
        if "FAKE-CODE" in line:
            cancel.cancel()

    with pytest.raises(Cancelled):
        sign_in.sign_in_with_browser(log, cancel=cancel, server_url=server.url, timeout_s=60)
    if existing:
        assert config.read_bytes() == before
    else:
        assert not config.exists()
    assert [p.name for p in config.parent.iterdir() if "modal" in p.name] == ([".modal.toml"] if existing else [])


# --- warm and module hygiene --------------------------------------------------------------------------------


def test_warm_model_volume_sends_a_second_of_flac_and_returns_timings():
    import io

    import soundfile

    seen = {}

    def remote(audio: bytes, options: dict) -> dict:
        samples, rate = soundfile.read(io.BytesIO(audio))
        seen.update(rate=rate, seconds=len(samples) / rate, options=options)
        return {"segments": [], "timings": {"gpu": "Tesla T4", "cold_start": True, "model_load_s": 2.5}}

    timings = warm.warm_model_volume("tiny.en", transcribe=remote)
    assert timings["gpu"] == "Tesla T4"
    assert seen == {"rate": 16000, "seconds": 1.0, "options": {"language": "en"}}


def test_the_package_imports_neither_modal_nor_qt():
    code = (
        "import sys, worker.modal.checks, worker.modal.deploy, worker.modal.sign_in, worker.modal.warm, "
        "worker.modal.settings; print(sorted(m for m in sys.modules if m.split('.')[0] in ('modal', 'PySide6')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

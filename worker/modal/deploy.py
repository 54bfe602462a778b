"""`whisper-desk deploy`: runs `python -m modal deploy -m worker.modal.app` in a subprocess (against the
resolved profile's server and token), streams its scrubbed output, and records the worker API version in the
app's tags. The subprocess helpers here are shared with the browser sign-in.
"""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, ModalSetupError
from worker.modal.bounded import CHECK_TIMEOUT_CAP_S, close_client, open_client, run_bounded
from worker.modal.credentials import (
    ANSI,
    TOKENS_URL,
    Credentials,
    Secret,
    app_profile,
    resolve_credentials,
    resolve_environment,
    resolve_server_url,
    scrub,
)
from worker.modal.errors import NO_TOKEN, explain_modal_error
from worker.modal.settings import APP_NAME, STARTUP_TAG, VERSION_TAG, WORKER_API_VERSION, DeploySettings

# a first deploy builds the T4 image: torch's CUDA wheels (cuDNN, cuBLAS, NCCL ...) are several GB, then the
# image is snapshotted; a later deploy reuses the built layers and takes seconds
DEPLOY_TIMEOUT_S = 2700.0
DEPLOY_QUIET_S = 600.0  # a build that prints nothing for this long is stuck (pip prints as it downloads)
DEPLOY_LOG_NAME = "modal-deploy.log"  # the last deploy's whole output, kept next to the library
DEPLOY_MODULE = "worker.modal.app"  # what `modal deploy -m` imports

LogFn = Callable[[str], None]


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


def subprocess_env(server_url: str | None, profile: str | None, environment: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", NO_COLOR="1", TERM="dumb", COLUMNS="120")
    if server_url:
        env["MODAL_SERVER_URL"] = server_url
    if profile:
        env["MODAL_PROFILE"] = profile
    if environment:
        env["MODAL_ENVIRONMENT"] = environment
    root = str(project_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@dataclass
class _ProcessOutcome:
    returncode: int | None  # None: stopped by us
    lines: list[str]
    timed_out: bool = False
    cancelled: bool = False
    quiet: bool = False  # timed out because nothing was printed for too long


def _stop_process(process: subprocess.Popen) -> None:
    """Terminate the process and its children (it runs in its own session), then kill if it lingers."""
    if process.poll() is not None:
        return
    try:
        if os.name == "posix":
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.terminate()
        process.wait(3)
    except (ProcessLookupError, subprocess.TimeoutExpired, PermissionError):
        try:
            if os.name == "posix":
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
        except (ProcessLookupError, PermissionError):
            pass
        process.wait(5)


def run_streamed(
    command: list[str],
    log: LogFn,
    cancel: CancelToken | None,
    timeout_s: float,
    env: dict[str, str] | None = None,
    secrets: tuple[str | Secret | None, ...] = (),
    cwd: Path | None = None,
    quiet_s: float | None = None,
) -> _ProcessOutcome:
    """Run `command`, passing each output line (stdout and stderr, scrubbed) to `log` as it comes.
    Stops the process when `cancel` fires, after `timeout_s`, or after `quiet_s` without a line."""
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env, cwd=str(cwd) if cwd else None, start_new_session=(os.name == "posix"),
    )
    output = process.stdout
    assert output is not None
    lines_in: "queue.Queue[str | None]" = queue.Queue()

    def read() -> None:
        for raw in io.TextIOWrapper(output, encoding="utf-8", errors="replace", newline=None):
            lines_in.put(raw)
        lines_in.put(None)

    reader = threading.Thread(target=read, name="subprocess-output", daemon=True)
    reader.start()
    outcome = _ProcessOutcome(returncode=None, lines=[])
    deadline = time.monotonic() + timeout_s
    last_line = time.monotonic()
    finished_reading = False
    while not finished_reading:
        if cancel is not None and cancel.cancelled:
            outcome.cancelled = True
            break
        now = time.monotonic()
        if now > deadline or (quiet_s is not None and now - last_line > quiet_s):
            outcome.timed_out = True
            outcome.quiet = now <= deadline
            break
        try:
            raw = lines_in.get(timeout=0.1)
        except queue.Empty:
            continue
        last_line = time.monotonic()
        if raw is None:
            finished_reading = True
            break
        for piece in raw.split("\r"):
            line = scrub(ANSI.sub("", piece).rstrip(), *secrets)
            if line.strip():
                outcome.lines.append(line)
                log(line)
    if finished_reading:
        try:
            outcome.returncode = process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            outcome.timed_out = True
    if outcome.returncode is None:
        _stop_process(process)
    reader.join(2)
    return outcome


def failure_reason(lines: list[str]) -> str:
    """The one line that says why a modal CLI command failed."""
    text = "\n".join(lines)
    if "Token missing" in text or "Could not authenticate client" in text:
        return NO_TOKEN
    if re.search(r"AuthError|Token (is )?(invalid|expired)|UNAUTHENTICATED", text):
        return f"Modal rejected the token: create a new one at {TOKENS_URL} and run the setup wizard"
    for line in reversed(lines):
        stripped = line.strip(" │╭╮╰╯─")
        match = re.match(r"^(?:Error|[A-Za-z_.]*(?:Error|Exception)):\s*(.+)$", stripped)
        if match:
            return match.group(1).strip()[:300]
    return (lines[-1].strip()[:300] if lines else "no output")


@dataclass(frozen=True)
class DeployResult:
    app_name: str
    version: str | None
    url: str | None
    seconds: float
    environment: str | None = None  # the Modal environment deployed to (None: the workspace's default)

    def __str__(self) -> str:
        version = f" (worker API v{self.version})" if self.version else ""
        where = f" in environment {self.environment}" if self.environment else ""
        url = f" at {self.url}" if self.url else ""
        return f"{self.app_name}{version}{where}{url} in {self.seconds:.0f} s"


def deploy_log_path() -> Path:
    """Where the last deploy's whole output is kept (the data folder next to the library)."""
    from platformdirs import user_data_dir

    from worker.core.constants import APP_DIRS_NAME

    return Path(user_data_dir(APP_DIRS_NAME, appauthor=False)) / DEPLOY_LOG_NAME


def _keep_log(lines: list[str]) -> Path | None:
    """The deploy's output, written where the user can read it after a failure (None if it cannot be)."""
    path = deploy_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError:
        return None
    return path


def _build_failure(lines: list[str]) -> str | None:
    """The one line for an image build that failed on Modal (modal's ImageBuildError), or None."""
    text = "\n".join(lines)
    if "ImageBuildError" not in text and not re.search(
        r"Image build for \S+ (failed\.|failed with the exception|timed out|terminated)", text
    ):
        return None
    for line in lines:  # modal prints the exception on the lines after "Image build for im-… failed …"
        stripped = line.strip(" │╭╮╰╯─")
        if stripped.startswith(("ERROR:", "error:", "E: ")):
            return f"the image build failed on Modal ({stripped[:200]})"
    return "the image build failed on Modal"


def deploy(
    log: LogFn,
    cancel: CancelToken | None = None,
    timeout_s: float = DEPLOY_TIMEOUT_S,
    server_url: str | None = None,
    profile: str | None = None,
    module: str = DEPLOY_MODULE,
    command: list[str] | None = None,
    version: str | None = None,
) -> DeployResult:
    """Deploy the T4 worker app (`python -m modal deploy -m worker.modal.app`), streaming its output to
    `log`, then record its worker API version in the app's tags (for check_app).
    Raises ModalSetupError with one line saying what to do, or Cancelled."""
    if cancel is not None and cancel.cancelled:
        raise Cancelled("deploy cancelled")
    try:
        DeploySettings.from_env()  # what Modal would refuse is refused here, in one line naming the variable
    except ValueError as exc:
        raise ModalSetupError(str(exc)) from None
    version = version or WORKER_API_VERSION
    if profile is None and not os.environ.get("MODAL_PROFILE"):
        profile = app_profile()  # the profile Whisper Desk uses, whichever one the modal CLI has active
    command_given = command
    command = command or [sys.executable, "-m", "modal", "deploy", "-m", module]
    secrets: tuple[str | Secret | None, ...] = ()
    try:
        credentials = resolve_credentials(profile)
    except ModalSetupError:
        credentials = None
    if credentials is not None:
        secrets = credentials.secrets()
    environment = resolve_environment(profile)
    shown = " ".join("python" if part == sys.executable else part for part in command)
    where = f" to environment {environment}" if environment else ""
    log(f"deploying {APP_NAME}" + (f" (worker API v{version})" if version else "") + f"{where}: {shown}")
    started = time.monotonic()
    outcome = run_streamed(command, log, cancel, timeout_s, subprocess_env(server_url, profile, environment), secrets,
                           project_root(), quiet_s=min(DEPLOY_QUIET_S, timeout_s))
    if outcome.cancelled:
        raise Cancelled("deploy cancelled")
    if outcome.timed_out:
        kept = _keep_log(outcome.lines)
        log_note = f"; its log is in {kept}" if kept else ""
        if outcome.quiet:
            raise ModalSetupError(
                f"deploy printed nothing for {min(DEPLOY_QUIET_S, timeout_s):g} s and was stopped{log_note}: "
                "check the network connection and run `whisper-desk deploy` again"
            )
        raise ModalSetupError(
            f"deploy did not finish within {timeout_s:g} s{log_note}: check the network connection and run "
            "`whisper-desk deploy` again"
        )
    if outcome.returncode != 0:
        kept = _keep_log(outcome.lines)
        build = _build_failure(outcome.lines)
        if build:
            raise ModalSetupError(f"deploy failed: {build}: the build log is in {kept or 'the output above'}")
        raise ModalSetupError(f"deploy failed: {failure_reason(outcome.lines)}")
    url = None
    for line in outcome.lines:
        match = re.search(r"https://\S*modal\.com/apps/\S+", line) or re.search(r"View Deployment:\s*(\S+)", line)
        if match:
            url = match.group(1) if match.groups() else match.group(0)
    if version and credentials is not None:
        # the start-up limit as deployed: modal 1.6's FunctionInfo leaves it out, so jobs read it from this tag
        limits = (str(DeploySettings.from_env().startup_timeout_s)
                  if command_given is None and module == DEPLOY_MODULE else None)
        _record_version(version, credentials, server_url or resolve_server_url(profile), log, cancel, environment,
                        limits)
    return DeployResult(APP_NAME, version, url, time.monotonic() - started, environment)


def _record_version(version: str, credentials: Credentials, server_url: str, log: LogFn,
                    cancel: CancelToken | None, environment: str | None = None, limits: str | None = None) -> None:
    """Make sure the deployed app carries VERSION_TAG=version (worker/modal/app.py may set it itself), and
    STARTUP_TAG=limits (the start-up limit deployed) when given; bounded, and a failure here only costs check_app its version (and jobs the
    deployed start-up limit): it is logged, not raised."""
    secrets = credentials.secrets()

    async def tag() -> bool:
        import modal

        client = await open_client(server_url, credentials)
        try:
            app = await modal.App.lookup.aio(APP_NAME, environment_name=environment, client=client)
            tags = await app.get_tags.aio(client=client)
            wanted = {VERSION_TAG: version, **({STARTUP_TAG: limits} if limits else {})}
            if all(tags.get(key) == value for key, value in wanted.items()):
                return False
            await app.set_tags.aio({**tags, **wanted}, client=client)
            return tags.get(VERSION_TAG) != version
        finally:
            await close_client(client)

    try:
        if run_bounded(tag, CHECK_TIMEOUT_CAP_S, cancel):
            log(f"recorded worker API v{version} on the app (tag {VERSION_TAG})")
    except Cancelled:
        raise
    except Exception as exc:
        reason = "no answer in time" if isinstance(exc, TimeoutError) else explain_modal_error(exc)
        log(scrub(f"note: could not record the worker API version on the app ({reason})", *secrets))

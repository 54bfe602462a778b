"""Modal credentials, checks and deploys: the code behind `whisper-desk check|deploy` and the setup wizard.

Credentials live where Modal keeps them: `~/.modal.toml` (or `MODAL_CONFIG_PATH`), one `[profile]` table per
profile with `token_id`, `token_secret` and `active = true` on the one in use; `MODAL_TOKEN_ID` /
`MODAL_TOKEN_SECRET` in the environment win over the file, key by key, as in Modal. Modal reads that file
once, at import, so every check here uses an explicit client built from the credentials we resolve.

Every network call is bounded: with a token but no network, modal's own calls retry for about 57 s.
The token secret never appears in a returned string, a log line or an exception message.

No Qt here, and `modal` is imported only inside the functions that talk to Modal.
"""

from __future__ import annotations

import asyncio
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
from typing import Any, Awaitable, Callable, NamedTuple

from worker.errors import Cancelled, ModalSetupError, WhisperDeskError, exception_line
from worker.events import CancelToken

APP_NAME = "whisper-desk"  # the deployed app (worker/modal_app.py's APP_NAME)
CLASS_NAME = "Transcriber"
VERSION_TAG = "whisper_desk_api"  # App tag holding the deployed worker API version
DEFAULT_PROFILE = "whisper-desk"
CHECK_TIMEOUT_CAP_S = 10.0  # no credential or app check ever waits longer than this
DEPLOY_TIMEOUT_S = 900.0  # a first deploy builds the T4 image (torch, whisper): minutes
SIGN_IN_TIMEOUT_S = 300.0
WARM_TIMEOUT_S = 900.0  # a cold T4 plus a first download of a large model into the Volume
DEFAULT_SERVER_URL = "https://api.modal.com,https://api.modal2.com"  # modal.config.DEFAULT_SERVER_URL (1.6)
TOKENS_URL = "https://modal.com/settings/tokens"

LogFn = Callable[[str], None]


# --- secrets -------------------------------------------------------------------------------------------


def mask_secret(secret: "str | Secret | None") -> str:
    """What is shown instead of a secret: its prefix and stars ("as-****")."""
    value = secret.reveal() if isinstance(secret, Secret) else (secret or "")
    if not value:
        return ""
    return "as-****" if value.startswith("as-") else "****"


class Secret:
    """A token secret that does not print: str(), repr() and f-strings give "as-****"; reveal() gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return mask_secret(self._value)

    __repr__ = __str__

    def __format__(self, _spec: str) -> str:
        return str(self)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return other._value == self._value
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self):  # never pickled into a queue, a log record or a database by accident
        raise TypeError("a Secret cannot be pickled")


def _plain(secret: "str | Secret | None") -> str | None:
    return secret.reveal() if isinstance(secret, Secret) else secret


_SECRET_PATTERN = re.compile(r"\bas-[A-Za-z0-9_-]{8,}")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


def scrub(text: str, *secrets: "str | Secret | None") -> str:
    """`text` with every given secret, and anything shaped like a Modal token secret, masked."""
    for secret in secrets:
        value = _plain(secret)
        if value:
            text = text.replace(value, mask_secret(value))
    return _SECRET_PATTERN.sub("as-****", text)


# --- the config file -----------------------------------------------------------------------------------


def config_path() -> Path:
    """Where Modal keeps its profiles: MODAL_CONFIG_PATH, else ~/.modal.toml (read fresh on every call)."""
    return Path(os.environ.get("MODAL_CONFIG_PATH") or os.path.expanduser("~/.modal.toml"))


def read_profiles(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """All profiles in the Modal config file ({} when there is none). Raises ModalSetupError if unreadable."""
    import toml  # what modal itself reads and writes this file with (a dependency of modal)

    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ModalSetupError(f"{path}: cannot read the Modal config ({exc.strerror or exc})") from None
    try:
        data = toml.loads(text)
    except Exception as exc:
        reason = scrub(exception_line(exc))
        raise ModalSetupError(f"{path}: not a valid Modal config ({reason}); fix or delete it, then run the setup wizard") from None
    if not all(isinstance(value, dict) for value in data.values()):
        raise ModalSetupError(f"{path}: not a valid Modal config (every entry must be a [profile] table)")
    return data


def active_profile(profiles: dict[str, dict[str, Any]] | None = None) -> str:
    """The profile Modal uses: MODAL_PROFILE, else the one marked `active = true`, else "default"."""
    if os.environ.get("MODAL_PROFILE"):
        return os.environ["MODAL_PROFILE"]
    profiles = read_profiles() if profiles is None else profiles
    for name, values in profiles.items():
        if values.get("active", False) is True:
            return name
    return "default"


class Credentials(NamedTuple):
    token_id: str
    token_secret: Secret
    source: str  # "environment", "profile NAME" or "environment + profile NAME"


def resolve_credentials(profile: str | None = None) -> Credentials | None:
    """The token Modal would use (with `profile`: as if MODAL_PROFILE were set to it), or None.
    Environment variables win over the file, key by key, as in Modal."""
    env_id = os.environ.get("MODAL_TOKEN_ID")
    env_secret = os.environ.get("MODAL_TOKEN_SECRET")
    profile = None
    file_id = file_secret = None
    if not (env_id and env_secret):
        profiles = read_profiles()
        profile = profile or active_profile(profiles)
        entry = profiles.get(profile, {})
        file_id, file_secret = entry.get("token_id"), entry.get("token_secret")
    token_id = env_id or file_id
    token_secret = env_secret or file_secret
    if not token_id or not token_secret:
        return None
    sources = []
    if env_id or env_secret:
        sources.append("environment")
    if (not env_id and file_id) or (not env_secret and file_secret):
        sources.append(f"profile {profile}")
    return Credentials(str(token_id), Secret(str(token_secret)), " + ".join(sources))


def has_credentials() -> bool:
    try:
        return resolve_credentials() is not None
    except ModalSetupError:
        return False


def env_credentials_set() -> bool:
    """True when MODAL_TOKEN_ID/MODAL_TOKEN_SECRET are set: they win over any saved profile."""
    return bool(os.environ.get("MODAL_TOKEN_ID") or os.environ.get("MODAL_TOKEN_SECRET"))


def resolve_server_url(profile: str | None = None) -> str:
    """MODAL_SERVER_URL, else the profile's `server_url`, else Modal's default (as modal.config does)."""
    if os.environ.get("MODAL_SERVER_URL"):
        return os.environ["MODAL_SERVER_URL"]
    try:
        profiles = read_profiles()
    except ModalSetupError:
        profiles = {}
    entry = profiles.get(profile or active_profile(profiles), {})
    return str(entry.get("server_url") or DEFAULT_SERVER_URL)


_TOKEN_ID = re.compile(r"^ak-[A-Za-z0-9_-]{8,128}$")
_TOKEN_SECRET = re.compile(r"^as-[A-Za-z0-9_-]{8,128}$")
_PROFILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def validate_token_shape(token_id: str, token_secret: "str | Secret") -> str | None:
    """None when both look like a Modal token; otherwise one line saying what is wrong (never the secret)."""
    token_id = (token_id or "").strip()
    secret = (_plain(token_secret) or "").strip()
    if not token_id:
        return "enter the Token ID (it starts with ak-)"
    if token_id.startswith("as-"):
        return "the Token ID field holds a secret (as-…): put the Token ID (ak-…) there"
    if not token_id.startswith("ak-"):
        return "the Token ID must start with ak-"
    if not _TOKEN_ID.match(token_id):
        return "the Token ID must be ak- followed by at least 8 letters or digits, with no spaces"
    if not secret:
        return "enter the Token Secret (it starts with as-)"
    if secret.startswith("ak-"):
        return "the Token Secret field holds a Token ID (ak-…): put the secret (as-…) there"
    if not secret.startswith("as-"):
        return "the Token Secret must start with as-"
    if not _TOKEN_SECRET.match(secret):
        return "the Token Secret must be as- followed by at least 8 letters or digits, with no spaces"
    return None


def validate_profile_name(profile: str) -> str | None:
    if not _PROFILE.match(profile or ""):
        return "the profile name must be letters, digits, '-', '_' or '.', starting with a letter or digit"
    return None


def _atomic_write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 so that readers see the old file or the new one, never a part."""
    target = Path(os.path.realpath(path))  # keep a symlinked ~/.modal.toml a symlink
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_token(
    token_id: str,
    token_secret: "str | Secret",
    profile: str = "default",
    activate: bool = True,
    server_url: str | None = None,
    path: Path | None = None,
) -> Path:
    """Save a token as a Modal profile (mode 0600, atomic), keeping the other profiles. Returns the path.

    With `activate`, this profile gets `active = true` and the others lose theirs (as `modal token set`
    does); a first profile is always activated. `server_url` is stored only when given (a non-default server).
    """
    import toml

    token_id = token_id.strip()
    secret = (_plain(token_secret) or "").strip()
    reason = validate_token_shape(token_id, secret) or validate_profile_name(profile)
    if reason:
        raise ModalSetupError(f"token not saved: {reason}")
    path = path or config_path()
    profiles = read_profiles(path)  # a broken file is reported, never overwritten
    entry = dict(profiles.get(profile, {}))
    entry.update(token_id=token_id, token_secret=secret)
    if server_url:
        entry["server_url"] = server_url
    profiles[profile] = entry
    if activate or len(profiles) == 1:
        for values in profiles.values():
            values.pop("active", None)
        entry["active"] = True
    _atomic_write_private(path, toml.dumps(profiles))
    return path


# --- running modal calls bounded, in any thread ----------------------------------------------------------


def _cap(timeout_s: float, cap: float = CHECK_TIMEOUT_CAP_S) -> float:
    return max(0.1, min(float(timeout_s), cap))


def _run_bounded(make_coro: Callable[[], Awaitable[Any]], timeout_s: float, cancel: CancelToken | None) -> Any:
    """Run a coroutine on a private event loop in a private thread, at most `timeout_s` (then TimeoutError).

    Works from any thread, including one with a running loop. `cancel` stops it at once (Cancelled).
    The thread is joined with a small grace; if modal's cleanup hangs past it, it is left behind (daemon).
    """
    if cancel is not None and cancel.cancelled:
        raise Cancelled()
    outcome: dict[str, Any] = {}

    async def main() -> Any:
        task = asyncio.ensure_future(make_coro())
        loop = asyncio.get_running_loop()

        def stop() -> None:
            try:
                loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # loop already closed: nothing left to stop
                pass

        if cancel is not None:
            cancel.on_cancel(stop)
        try:
            return await asyncio.wait_for(task, timeout_s)
        except asyncio.CancelledError:
            if cancel is not None and cancel.cancelled:
                raise Cancelled() from None
            raise

    from worker.async_loops import new_quiet_loop

    def runner() -> None:
        try:
            with asyncio.Runner(loop_factory=new_quiet_loop) as loop_runner:
                outcome["value"] = loop_runner.run(main())
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=runner, name="modal-check", daemon=True)
    thread.start()
    thread.join(timeout_s + 2.0)
    if thread.is_alive():
        if cancel is not None and cancel.cancelled:
            raise Cancelled()
        raise TimeoutError()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _mro_names(exc: BaseException) -> list[str]:
    return [klass.__name__ for klass in type(exc).__mro__ if klass.__module__.startswith(("modal", "grpclib"))]


def _is_auth_error(exc: BaseException) -> bool:
    return bool({"AuthError", "PermissionDeniedError"} & set(_mro_names(exc)))


def _is_not_found(exc: BaseException) -> bool:
    return "NotFoundError" in _mro_names(exc)


def _host(server_url: str) -> str:
    from urllib.parse import urlparse

    first = server_url.split(",")[0]
    return urlparse(first).netloc or first


async def _open_client(server_url: str, token_id: str, token_secret: str):
    """An explicit, opened modal client (never modal's cached global one, which read the config at import)."""
    import modal
    from modal_proto import api_pb2

    client = modal.Client(server_url, api_pb2.CLIENT_TYPE_CLIENT, (token_id, token_secret))
    await client.__aenter__()
    return client


# --- credential check ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckResult:
    state: str  # "ok" | "missing" | "rejected" | "unreachable"
    detail: str
    workspace: str | None = None
    source: str | None = None  # where the token came from: "environment", "profile NAME", "given"
    token_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.state == "ok"


_NO_TOKEN = "no Modal token is set: run the setup wizard (or `modal token new`)"


def _given_or_resolved(
    token_id: str | None, token_secret: "str | Secret | None"
) -> tuple[str, str, str] | str:
    """(token_id, secret, source), or a one-line reason why there is no token to use."""
    if token_id is not None or token_secret is not None:
        if not token_id or not _plain(token_secret):
            return "a Token ID and a Token Secret must both be given"
        return token_id.strip(), (_plain(token_secret) or "").strip(), "given"
    try:
        credentials = resolve_credentials()
    except ModalSetupError as exc:
        return str(exc)
    if credentials is None:
        return _NO_TOKEN
    return credentials.token_id, credentials.token_secret.reveal(), credentials.source


def check_credentials(
    timeout_s: float = CHECK_TIMEOUT_CAP_S,
    token_id: str | None = None,
    token_secret: "str | Secret | None" = None,
    server_url: str | None = None,
    cancel: CancelToken | None = None,
) -> CheckResult:
    """Ask Modal whether the token is accepted, in at most `timeout_s` (capped at 10 s). Never raises for
    Modal's answers (they are states); raises Cancelled when `cancel` fires. Runs in any thread."""
    timeout = _cap(timeout_s)
    resolved = _given_or_resolved(token_id, token_secret)
    if isinstance(resolved, str):
        return CheckResult("missing", resolved)
    tid, secret, source = resolved
    shape = validate_token_shape(tid, secret)
    if shape:
        return CheckResult("rejected", f"not a Modal token ({source}): {shape}", source=source, token_id=None)
    url = server_url or resolve_server_url()
    started = time.monotonic()

    async def probe() -> str | None:
        import modal

        client = await _open_client(url, tid, secret)
        try:
            await client.hello.aio()
            # the workspace name is a nicety: give it what is left of the bound, at most 3 s
            left = timeout - (time.monotonic() - started) - 0.2
            if left <= 0:
                return None
            try:
                workspace = modal.Workspace.from_context(client=client)
                await asyncio.wait_for(workspace.hydrate.aio(), min(3.0, left))
                return workspace.name
            except (asyncio.TimeoutError, Exception):
                return None
        finally:
            await client.__aexit__(None, None, None)

    try:
        workspace = _run_bounded(probe, timeout, cancel)
    except Cancelled:
        raise
    except (TimeoutError, asyncio.TimeoutError):
        return CheckResult(
            "unreachable",
            f"no answer from Modal ({_host(url)}) within {timeout:g} s: check the network connection and try again",
            source=source, token_id=tid,
        )
    except Exception as exc:
        if _is_auth_error(exc):
            return CheckResult(
                "rejected",
                f"Modal rejected the token {tid} ({source}): create a new one at {TOKENS_URL} "
                "and run the setup wizard (or `modal token new`)",
                source=source, token_id=tid,
            )
        return CheckResult("unreachable", scrub(explain_modal_error(exc), secret), source=source, token_id=tid)
    where = f"workspace {workspace}" if workspace else "Modal"
    return CheckResult(
        "ok", f"token {tid} accepted by {where} ({source})", workspace=workspace, source=source, token_id=tid
    )


# --- the deployed app ----------------------------------------------------------------------------------


def local_worker_version() -> str | None:
    """The worker API version this app speaks (worker/modal_app.py's WORKER_API_VERSION), if importable."""
    try:
        from worker.modal_app import WORKER_API_VERSION
    except Exception:
        return None
    return str(WORKER_API_VERSION)


@dataclass(frozen=True)
class AppCheck:
    state: str  # "deployed" | "not deployed" | "unknown"
    detail: str
    deployed_version: str | None = None
    expected_version: str | None = None

    @property
    def up_to_date(self) -> bool:
        """Deployed, and at the version this app speaks (or neither version is known)."""
        if self.state != "deployed":
            return False
        return self.deployed_version == self.expected_version or self.expected_version is None


AppState = AppCheck  # the name used in the project's contract


def check_app(
    timeout_s: float = CHECK_TIMEOUT_CAP_S,
    token_id: str | None = None,
    token_secret: "str | Secret | None" = None,
    server_url: str | None = None,
    app_name: str = APP_NAME,
    expected_version: str | None = None,
    cancel: CancelToken | None = None,
) -> AppCheck:
    """Is the worker app deployed, and at which API version? At most `timeout_s` (capped at 10 s).

    Looks up the class the app calls (`Transcriber`) and reads the version from the app's tags
    (VERSION_TAG, set by worker/modal_app.py's App(tags=...) or by `deploy`)."""
    timeout = _cap(timeout_s)
    expected = expected_version if expected_version is not None else local_worker_version()
    resolved = _given_or_resolved(token_id, token_secret)
    if isinstance(resolved, str):
        return AppCheck("unknown", resolved, expected_version=expected)
    tid, secret, _source = resolved
    url = server_url or resolve_server_url()

    async def probe() -> str | None:
        import modal

        client = await _open_client(url, tid, secret)
        try:
            await modal.Cls.from_name(app_name, CLASS_NAME, client=client).hydrate.aio()
            try:
                app = await modal.App.lookup.aio(app_name, client=client)
                tags = await app.get_tags.aio(client=client)
            except Exception as exc:
                if _is_not_found(exc) or _is_auth_error(exc):
                    raise
                return None  # deployed; its version unreadable
            return tags.get(VERSION_TAG)
        finally:
            await client.__aexit__(None, None, None)

    try:
        deployed = _run_bounded(probe, timeout, cancel)
    except Cancelled:
        raise
    except (TimeoutError, asyncio.TimeoutError):
        return AppCheck(
            "unknown", f"no answer from Modal ({_host(url)}) within {timeout:g} s: check the network connection",
            expected_version=expected,
        )
    except Exception as exc:
        if _is_not_found(exc):
            return AppCheck(
                "not deployed",
                f"the worker app {app_name} is not deployed in this workspace: run `whisper-desk deploy` (or the setup wizard)",
                expected_version=expected,
            )
        return AppCheck("unknown", scrub(explain_modal_error(exc), secret), expected_version=expected)
    if deployed is None:
        detail = f"{app_name} is deployed (its worker API version is not recorded"
        detail += f"; this app speaks v{expected}): redeploy with `whisper-desk deploy` to be sure)" if expected else ")"
    elif expected is None or deployed == expected:
        detail = f"{app_name} is deployed at worker API v{deployed}"
    else:
        detail = f"{app_name} is deployed at worker API v{deployed}, this app needs v{expected}: run `whisper-desk deploy`"
    return AppCheck("deployed", detail, deployed_version=deployed, expected_version=expected)


# --- subprocesses: deploy and browser sign-in ------------------------------------------------------------


def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def _subprocess_env(server_url: str | None, profile: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8", NO_COLOR="1", TERM="dumb", COLUMNS="120")
    if server_url:
        env["MODAL_SERVER_URL"] = server_url
    if profile:
        env["MODAL_PROFILE"] = profile
    root = str(project_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


@dataclass
class _ProcessOutcome:
    returncode: int | None  # None: stopped by us
    lines: list[str]
    timed_out: bool = False
    cancelled: bool = False


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
) -> _ProcessOutcome:
    """Run `command`, passing each output line (stdout and stderr, scrubbed) to `log` as it comes.
    Stops the process when `cancel` fires or after `timeout_s`."""
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=env, cwd=str(cwd) if cwd else None, start_new_session=(os.name == "posix"),
    )
    assert process.stdout is not None
    lines_in: "queue.Queue[str | None]" = queue.Queue()

    def read() -> None:
        for raw in io.TextIOWrapper(process.stdout, encoding="utf-8", errors="replace", newline=None):
            lines_in.put(raw)
        lines_in.put(None)

    reader = threading.Thread(target=read, name="subprocess-output", daemon=True)
    reader.start()
    outcome = _ProcessOutcome(returncode=None, lines=[])
    deadline = time.monotonic() + timeout_s
    finished_reading = False
    while not finished_reading:
        if cancel is not None and cancel.cancelled:
            outcome.cancelled = True
            break
        if time.monotonic() > deadline:
            outcome.timed_out = True
            break
        try:
            raw = lines_in.get(timeout=0.1)
        except queue.Empty:
            continue
        if raw is None:
            finished_reading = True
            break
        for piece in raw.split("\r"):
            line = scrub(_ANSI.sub("", piece).rstrip(), *secrets)
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


def _failure_reason(lines: list[str]) -> str:
    """The one line that says why a modal CLI command failed."""
    text = "\n".join(lines)
    if "Token missing" in text or "Could not authenticate client" in text:
        return _NO_TOKEN
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

    def __str__(self) -> str:
        version = f" (worker API v{self.version})" if self.version else ""
        url = f" at {self.url}" if self.url else ""
        return f"{self.app_name}{version}{url} in {self.seconds:.0f} s"


def deploy(
    log: LogFn,
    cancel: CancelToken | None = None,
    timeout_s: float = DEPLOY_TIMEOUT_S,
    server_url: str | None = None,
    profile: str | None = None,
    module: str = "worker.modal_app",
    command: list[str] | None = None,
    version: str | None = None,
) -> DeployResult:
    """Deploy the T4 worker app (`python -m modal deploy -m worker.modal_app`), streaming its output to
    `log`, then record its worker API version in the app's tags (for check_app).
    Raises ModalSetupError with one line saying what to do, or Cancelled."""
    if cancel is not None and cancel.cancelled:
        raise Cancelled("deploy cancelled")
    version = version or local_worker_version()
    command = command or [sys.executable, "-m", "modal", "deploy", "-m", module]
    secrets: tuple[str | Secret | None, ...] = ()
    try:
        credentials = resolve_credentials(profile)
    except ModalSetupError:
        credentials = None
    if credentials is not None:
        secrets = (credentials.token_secret,)
    shown = " ".join("python" if part == sys.executable else part for part in command)
    log(f"deploying {APP_NAME}" + (f" (worker API v{version})" if version else "") + f": {shown}")
    started = time.monotonic()
    outcome = run_streamed(command, log, cancel, timeout_s, _subprocess_env(server_url, profile), secrets, project_root())
    if outcome.cancelled:
        raise Cancelled("deploy cancelled")
    if outcome.timed_out:
        raise ModalSetupError(
            f"deploy did not finish within {timeout_s:g} s: check the network connection and run `whisper-desk deploy` again"
        )
    if outcome.returncode != 0:
        raise ModalSetupError(f"deploy failed: {_failure_reason(outcome.lines)}")
    url = None
    for line in outcome.lines:
        match = re.search(r"https://\S*modal\.com/apps/\S+", line) or re.search(r"View Deployment:\s*(\S+)", line)
        if match:
            url = match.group(1) if match.groups() else match.group(0)
    if version and credentials is not None:
        _record_version(version, credentials, server_url or resolve_server_url(profile), log, cancel)
    return DeployResult(APP_NAME, version, url, time.monotonic() - started)


def _record_version(version: str, credentials: Credentials, server_url: str, log: LogFn,
                    cancel: CancelToken | None) -> None:
    """Make sure the deployed app carries VERSION_TAG=version (worker/modal_app.py may set it itself);
    bounded, and a failure here only costs check_app its version: it is logged, not raised."""
    secret = credentials.token_secret.reveal()

    async def tag() -> bool:
        import modal

        client = await _open_client(server_url, credentials.token_id, secret)
        try:
            app = await modal.App.lookup.aio(APP_NAME, client=client)
            tags = await app.get_tags.aio(client=client)
            if tags.get(VERSION_TAG) == version:
                return False
            await app.set_tags.aio({**tags, VERSION_TAG: version}, client=client)
            return True
        finally:
            await client.__aexit__(None, None, None)

    try:
        if _run_bounded(tag, CHECK_TIMEOUT_CAP_S, cancel):
            log(f"recorded worker API v{version} on the app (tag {VERSION_TAG})")
    except Cancelled:
        raise
    except Exception as exc:
        reason = "no answer in time" if isinstance(exc, TimeoutError) else explain_modal_error(exc)
        log(scrub(f"note: could not record the worker API version on the app ({reason})", secret))


@dataclass(frozen=True)
class SignInResult:
    profile: str
    token_id: str
    path: Path


def sign_in_with_browser(
    log: LogFn,
    cancel: CancelToken | None = None,
    timeout_s: float = SIGN_IN_TIMEOUT_S,
    profile: str = DEFAULT_PROFILE,
    server_url: str | None = None,
    command: list[str] | None = None,
) -> SignInResult:
    """Run `modal token new` for `profile` (it opens the browser, prints the URL and waits), streaming its
    output. Modal verifies and saves the token itself; we keep the file at 0600. Cancelling, a timeout or a
    failure leave the config file as it was."""
    reason = validate_profile_name(profile)
    if reason:
        raise ModalSetupError(reason)
    if cancel is not None and cancel.cancelled:
        raise Cancelled("sign-in cancelled")
    path = config_path()
    before = path.read_bytes() if path.exists() else None
    if before is None:
        _atomic_write_private(path, "")  # modal then writes into a file that was never world-readable
    command = command or [sys.executable, "-m", "modal", "token", "new"]
    ok = False
    try:
        outcome = run_streamed(command, log, cancel, timeout_s, _subprocess_env(server_url, profile))
        if outcome.cancelled:
            raise Cancelled("sign-in cancelled")
        if outcome.timed_out:
            raise ModalSetupError(f"sign-in did not finish within {timeout_s:g} s: try again, or paste a token instead")
        if outcome.returncode != 0:
            raise ModalSetupError(f"sign-in failed: {_failure_reason(outcome.lines)}")
        entry = read_profiles(path).get(profile, {})
        if not entry.get("token_id") or not entry.get("token_secret"):
            raise ModalSetupError(f"sign-in finished but no token was saved in profile {profile}: try again")
        ok = True
        return SignInResult(profile, str(entry["token_id"]), path)
    finally:
        if not ok:
            _restore(path, before)
        elif path.exists():
            os.chmod(path, 0o600)


def _restore(path: Path, before: bytes | None) -> None:
    """Put the config file back as it was before a sign-in that did not complete."""
    if before is None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    if path.exists() and path.read_bytes() == before:
        return
    _atomic_write_private(path, before.decode("utf-8"))


# --- warming the model cache -----------------------------------------------------------------------------


def _silence_flac(seconds: float = 1.0) -> bytes:
    import numpy as np
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(16000 * seconds), dtype=np.float32), 16000, format="FLAC")
    return buffer.getvalue()


def warm_model_volume(
    model: str,
    timeout_s: float = WARM_TIMEOUT_S,
    cancel: CancelToken | None = None,
    server_url: str | None = None,
    app_name: str = APP_NAME,
    transcribe: Callable[[bytes, dict], dict] | None = None,
) -> dict[str, Any]:
    """Make sure `model`'s weights sit in the deployed app's cache Volume, returning the call's timings.

    The deployed API has one method, `Transcriber(model).transcribe(audio, options)`, which loads the model
    (downloading it into the Volume the first time) before it transcribes: so warming is a call with one
    second of silence. `transcribe` replaces the remote call (the stand-in remote in tests)."""
    audio = _silence_flac()
    options = {"language": "en"}
    if transcribe is not None:
        if cancel is not None:
            cancel.raise_if_cancelled()
        return dict(transcribe(audio, options).get("timings", {}))
    resolved = _given_or_resolved(None, None)
    if isinstance(resolved, str):
        raise ModalSetupError(resolved)
    tid, secret, _source = resolved
    url = server_url or resolve_server_url()

    async def call() -> dict:
        import modal

        client = await _open_client(url, tid, secret)
        try:
            cls = modal.Cls.from_name(app_name, CLASS_NAME, client=client)
            return await cls(model=model).transcribe.remote.aio(audio, options)
        finally:
            await client.__aexit__(None, None, None)

    try:
        result = _run_bounded(call, timeout_s, cancel)
    except (Cancelled, WhisperDeskError):
        raise
    except (TimeoutError, asyncio.TimeoutError):
        raise ModalSetupError(f"warming {model} did not finish within {timeout_s:g} s: try again later") from None
    except Exception as exc:
        raise ModalSetupError(scrub(explain_modal_error(exc), secret)) from None
    return dict(result.get("timings", {}))


# --- explaining Modal's exceptions -----------------------------------------------------------------------

_DEPLOY = "run `whisper-desk deploy`"
_WIZARD = "run the setup wizard (or `modal token new`)"

# (class name in the exception's MRO, what happened, what to do); the first match wins, so subclasses first
_EXPLANATIONS: list[tuple[str, str, str]] = [
    ("FunctionTimeoutError", "a chunk ran past the worker's time limit on Modal", "use shorter chunks or a longer timeout"),
    ("MountUploadTimeoutError", "uploading code to Modal timed out", "check the network connection and deploy again"),
    ("VolumeUploadTimeoutError", "uploading to the model Volume timed out", "check the network connection and try again"),
    ("OutputExpiredError", "the result expired on Modal before it was fetched", "run the job again"),
    ("SandboxTimeoutError", "a Modal sandbox timed out", "try again with a longer timeout"),
    ("ExecTimeoutError", "a command in a Modal container timed out", "try again with a longer timeout"),
    ("InteractiveTimeoutError", "an interactive Modal session timed out", "try again"),
    ("TimeoutError", "Modal timed out", "use shorter chunks or a longer timeout, then try again"),
    ("AuthError", "Modal did not accept the token", _WIZARD),
    ("PermissionDeniedError", "the Modal token may not do this in this workspace", "check the profile and workspace in the setup wizard"),
    ("NotFoundError", "the worker app (or something it needs) was not found on Modal", _DEPLOY),
    ("ConnectionError", "could not connect to Modal", "check the network connection (or proxy/firewall) and try again"),
    ("ResourceExhaustedError", "Modal's rate limit or a workspace quota was reached", "wait a minute and try again, or lower the number of containers"),
    ("ImageBuildError", "the worker image failed to build on Modal", "read the deploy log, then run `whisper-desk deploy` again"),
    ("RemoteError", "the worker failed on Modal", "try again; if it repeats, redeploy with `whisper-desk deploy`"),
    ("ExecutionError", "Modal could not run the worker", "redeploy with `whisper-desk deploy`, then try again"),
    ("ConflictError", "Modal refused the request (conflict with the app's current state)", "try again; if it repeats, run `whisper-desk deploy`"),
    ("InvalidError", "Modal refused the request as invalid", "update Whisper Desk and run `whisper-desk deploy`"),
    ("AlreadyExistsError", "that object already exists on Modal", "use the existing one or pick another name"),
    ("DeserializationError", "could not read the worker's answer (client and deployed app differ)", _DEPLOY + " so both match"),
    ("SerializationError", "could not send the data to the worker", "update Whisper Desk and run `whisper-desk deploy`"),
    ("RequestSizeError", "a request to Modal was too large", "use shorter chunks"),
    ("VersionError", "this modal package is too old for Modal's servers", "upgrade it: pip install -U modal"),
    ("ClientClosed", "the Modal connection was closed", "try again"),
    ("WorkspaceManagementError", "the Modal workspace refused the change", "check the workspace settings on modal.com"),
    ("SnapshotCreationError", "Modal could not snapshot the container", "try again; if it repeats, run `whisper-desk deploy`"),
    ("SandboxTerminatedError", "a Modal sandbox was stopped", "try again"),
    ("SandboxFilesystemError", "a file operation in a Modal sandbox failed", "try again"),
    ("LogsFetchError", "could not fetch logs from Modal", "try again later"),
    ("UnimplementedError", "Modal's server does not support this call", "upgrade the modal package: pip install -U modal"),
    ("DataLossError", "Modal reported lost data", "run the job again"),
    ("ServiceError", "Modal's service had a problem", "try again in a moment (status.modal.com)"),
    ("InternalError", "Modal had an internal error", "try again in a moment (status.modal.com)"),
    ("InternalFailure", "Modal had an internal failure", "try again in a moment (status.modal.com)"),
    ("InputCancellation", "the GPU call was cancelled on Modal", "run the job again"),
    ("Error", "Modal reported an error", "see `whisper-desk check`"),
]

_GRPC_STATUS = {
    "UNAUTHENTICATED": "AuthError",
    "PERMISSION_DENIED": "PermissionDeniedError",
    "NOT_FOUND": "NotFoundError",
    "RESOURCE_EXHAUSTED": "ResourceExhaustedError",
    "UNAVAILABLE": "ConnectionError",
    "DEADLINE_EXCEEDED": "TimeoutError",
    "INVALID_ARGUMENT": "InvalidError",
    "FAILED_PRECONDITION": "ConflictError",
    "UNIMPLEMENTED": "UnimplementedError",
    "INTERNAL": "InternalError",
}


def _short_message(exc: BaseException) -> str:
    text = ""
    try:
        text = str(getattr(exc, "_message", "") or exc)
    except Exception:
        text = ""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = scrub(first)
    return first[:160] + ("…" if len(first) > 160 else "")


def explain_modal_error(exc: BaseException) -> str:
    """One line for the user: what went wrong and what to do. Never contains a token secret."""
    if isinstance(exc, Cancelled):
        return str(exc)
    if isinstance(exc, WhisperDeskError):
        return scrub(exception_line(exc))
    names = _mro_names(exc)
    if names[:1] == ["GRPCError"]:  # a bare grpclib error that modal did not translate
        names = [_GRPC_STATUS.get(getattr(getattr(exc, "status", None), "name", ""), "ServiceError")]
    message = _short_message(exc)
    if "AuthError" in names and ("Token missing" in message or "must both be configured" in message):
        return _NO_TOKEN
    for name, what, todo in _EXPLANATIONS:
        if name in names:
            detail = f" ({message})" if message and name not in ("AuthError",) else ""
            return f"{what}{detail}: {todo}"
    # not one of modal's: the builtin errors a network call can raise
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return "Modal did not answer in time: check the network connection and try again"
    if isinstance(exc, OSError):
        return f"could not reach Modal ({message or type(exc).__name__}): check the network connection and try again"
    return f"{type(exc).__name__}: {message or 'unexpected error'}"

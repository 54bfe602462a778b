"""The bounded checks behind `whisper-desk check` and the setup wizard: is the token accepted (and by which
workspace), and is the worker app deployed at the API version this app speaks. Each waits at most 10 s, never
raises for Modal's answers (they are states) and runs in any thread. `modal` is imported only inside.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, ModalSetupError
from worker.modal.bounded import CHECK_TIMEOUT_CAP_S, cap_timeout, close_client, open_client, run_bounded, server_host
from worker.modal.credentials import (
    TOKENS_URL,
    Credentials,
    Secret,
    plain_secret,
    resolve_credentials,
    resolve_environment,
    resolve_server_url,
    scrub,
    validate_token_shape,
)
from worker.modal.errors import NO_TOKEN, explain_modal_error, is_auth_error, is_not_found
from worker.modal.settings import APP_NAME, CLASS_NAME, VERSION_TAG, WORKER_API_VERSION


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


def given_or_resolved(
    token_id: str | None, token_secret: "str | Secret | None"
) -> Credentials | str:
    """The credentials to use (a token given here, else those Modal would use), or a one-line reason why
    there are none."""
    if token_id is not None or token_secret is not None:
        if not token_id or not plain_secret(token_secret):
            return "a Token ID and a Token Secret must both be given"
        return Credentials(token_id.strip(), Secret((plain_secret(token_secret) or "").strip()), "given")
    try:
        credentials = resolve_credentials()
    except ModalSetupError as exc:
        return str(exc)
    if credentials is None:
        return NO_TOKEN
    return credentials


def check_credentials(
    timeout_s: float = CHECK_TIMEOUT_CAP_S,
    token_id: str | None = None,
    token_secret: "str | Secret | None" = None,
    server_url: str | None = None,
    cancel: CancelToken | None = None,
) -> CheckResult:
    """Ask Modal whether the token is accepted, in at most `timeout_s` (capped at 10 s). Never raises for
    Modal's answers (they are states); raises Cancelled when `cancel` fires. Runs in any thread."""
    timeout = cap_timeout(timeout_s)
    resolved = given_or_resolved(token_id, token_secret)
    if isinstance(resolved, str):
        return CheckResult("missing", resolved)
    source, tid, secrets = resolved.source, resolved.token_id or None, resolved.secrets()
    if resolved.oauth is None:
        shape = validate_token_shape(resolved.token_id, resolved.token_secret)
        if shape:
            return CheckResult("rejected", f"not a Modal token ({source}): {shape}", source=source, token_id=None)
    url = server_url or resolve_server_url()
    started = time.monotonic()

    async def probe() -> str | None:
        import modal

        client = await open_client(url, resolved)
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
            await close_client(client)

    try:
        workspace = run_bounded(probe, timeout, cancel)
    except Cancelled:
        raise
    except (TimeoutError, asyncio.TimeoutError):
        return CheckResult(
            "unreachable",
            f"{_no_answer(url, timeout)} and try again",
            source=source, token_id=tid,
        )
    except Exception as exc:
        if is_auth_error(exc):
            return CheckResult(
                "rejected",
                f"Modal rejected the {resolved.who} ({source}): create a new one at {TOKENS_URL} "
                "and run the setup wizard (or `modal token new`)",
                source=source, token_id=tid,
            )
        return CheckResult("unreachable", scrub(explain_modal_error(exc), *secrets), source=source, token_id=tid)
    where = f"workspace {workspace}" if workspace else "Modal"
    return CheckResult(
        "ok", f"{resolved.who} accepted by {where} ({source})", workspace=workspace, source=source, token_id=tid
    )


@dataclass(frozen=True)
class AppCheck:
    state: str  # "deployed" | "not deployed" | "unknown"
    detail: str
    deployed_version: str | None = None
    expected_version: str | None = None
    environment: str | None = None  # the Modal environment looked in (None: the workspace's default)

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
    environment: str | None = None,
) -> AppCheck:
    """Is the worker app deployed, and at which API version? At most `timeout_s` (capped at 10 s).

    Looks up the class the app calls (`Transcriber`) in the Modal environment (`environment`, else the one the
    profile names: resolve_environment) and reads the version from the app's tags (VERSION_TAG, set by
    worker/modal/app.py's App(tags=...) or by `deploy`)."""
    timeout = cap_timeout(timeout_s)
    expected = expected_version if expected_version is not None else WORKER_API_VERSION
    env = environment or resolve_environment()
    resolved = given_or_resolved(token_id, token_secret)
    if isinstance(resolved, str):
        return AppCheck("unknown", resolved, expected_version=expected, environment=env)
    secrets = resolved.secrets()
    url = server_url or resolve_server_url()
    where = f" (environment {env})" if env else ""

    async def probe() -> str | None:
        import modal

        client = await open_client(url, resolved)
        try:
            await modal.Cls.from_name(app_name, CLASS_NAME, environment_name=env, client=client).hydrate.aio()
            try:
                app = await modal.App.lookup.aio(app_name, environment_name=env, client=client)
                tags = await app.get_tags.aio(client=client)
            except Exception as exc:
                if is_not_found(exc) or is_auth_error(exc):
                    raise
                return None  # deployed; its version unreadable
            return tags.get(VERSION_TAG)
        finally:
            await close_client(client)

    try:
        deployed = run_bounded(probe, timeout, cancel)
    except Cancelled:
        raise
    except (TimeoutError, asyncio.TimeoutError):
        return AppCheck(
            "unknown", _no_answer(url, timeout),
            expected_version=expected, environment=env,
        )
    except Exception as exc:
        if is_not_found(exc):
            space = f"the Modal environment {env}" if env else "this workspace"
            return AppCheck(
                "not deployed",
                f"the worker app {app_name} is not deployed in {space}: run `whisper-desk deploy` (or the setup wizard)",
                expected_version=expected, environment=env,
            )
        return AppCheck("unknown", scrub(explain_modal_error(exc), *secrets), expected_version=expected, environment=env)
    if deployed is None:
        detail = f"{app_name} is deployed{where} (its worker API version is not recorded"
        detail += f"; this app speaks v{expected}): redeploy with `whisper-desk deploy` to be sure)" if expected else ")"
    elif expected is None or deployed == expected:
        detail = f"{app_name} is deployed at worker API v{deployed}{where}"
    else:
        detail = (f"{app_name} is deployed at worker API v{deployed}{where}, this app needs v{expected}: "
                  "run `whisper-desk deploy`")
    return AppCheck("deployed", detail, deployed_version=deployed, expected_version=expected, environment=env)


def _no_answer(url: str, timeout: float) -> str:
    return f"no answer from Modal ({server_host(url)}) within {timeout:g} s: check the network connection"

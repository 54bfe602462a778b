"""Browser sign-in: `modal token new` for a profile, streamed; the config file is left as it was unless a
token was saved."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, ModalSetupError
from worker.modal.credentials import (
    DEFAULT_PROFILE,
    atomic_write_private,
    config_path,
    other_active_profile,
    read_profiles,
    set_app_profile,
    validate_profile_name,
)
from worker.modal.deploy import LogFn, failure_reason, run_streamed, subprocess_env

SIGN_IN_TIMEOUT_S = 300.0


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
    activate: bool | None = None,
) -> SignInResult:
    """Run `modal token new` for `profile` (it opens the browser, prints the URL and waits), streaming its
    output. Modal verifies and saves the token itself; we keep the file at 0600. Unless `activate` says so, the
    modal CLI's active profile stays as it was when there is one (`--no-activate`); Whisper Desk uses the new
    profile either way (set_app_profile). Cancelling, a timeout or a failure leave the config file as it was."""
    reason = validate_profile_name(profile)
    if reason:
        raise ModalSetupError(reason)
    if cancel is not None and cancel.cancelled:
        raise Cancelled("sign-in cancelled")
    path = config_path()
    before = path.read_bytes() if path.exists() else None
    if before is None:
        atomic_write_private(path, "")  # modal then writes into a file that was never world-readable
    if activate is None:
        activate = other_active_profile(profile) is None
    command = command or [sys.executable, "-m", "modal", "token", "new", *([] if activate else ["--no-activate"])]
    ok = False
    try:
        outcome = run_streamed(command, log, cancel, timeout_s, subprocess_env(server_url, profile))
        if outcome.cancelled:
            raise Cancelled("sign-in cancelled")
        if outcome.timed_out:
            raise ModalSetupError(f"sign-in did not finish within {timeout_s:g} s: try again, or paste a token instead")
        if outcome.returncode != 0:
            raise ModalSetupError(f"sign-in failed: {failure_reason(outcome.lines)}")
        entry = read_profiles(path).get(profile, {})
        if not entry.get("token_id") or not entry.get("token_secret"):
            raise ModalSetupError(f"sign-in finished but no token was saved in profile {profile}: try again")
        ok = True
        set_app_profile(profile)
        return SignInResult(profile, str(entry["token_id"]), path)
    finally:
        if not ok:
            restore_config(path, before)
        elif path.exists():
            os.chmod(path, 0o600)


def restore_config(path: Path, before: bytes | None) -> None:
    """Put the config file back as it was before a sign-in that did not complete."""
    if before is None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        return
    if path.exists() and path.read_bytes() == before:
        return
    atomic_write_private(path, before.decode("utf-8"))

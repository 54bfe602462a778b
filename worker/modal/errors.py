"""One line for the user for each of modal's exceptions: what went wrong and what to do (never a secret)."""

from __future__ import annotations

import asyncio

from worker.core.errors import Cancelled, WhisperDeskError, exception_line
from worker.modal.credentials import scrub

NO_TOKEN = "no Modal token is set: run the setup wizard (or `modal token new`)"


def mro_names(exc: BaseException) -> list[str]:
    """The names of modal's and grpclib's classes in the exception's MRO (modal is never imported here)."""
    return [klass.__name__ for klass in type(exc).__mro__ if klass.__module__.startswith(("modal", "grpclib"))]


def is_auth_error(exc: BaseException) -> bool:
    return bool({"AuthError", "PermissionDeniedError"} & set(mro_names(exc)))


def is_not_found(exc: BaseException) -> bool:
    return "NotFoundError" in mro_names(exc)


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
    names = mro_names(exc)
    if names[:1] == ["GRPCError"]:  # a bare grpclib error that modal did not translate
        names = [_GRPC_STATUS.get(getattr(getattr(exc, "status", None), "name", ""), "ServiceError")]
    message = _short_message(exc)
    if "AuthError" in names and ("Token missing" in message or "must both be configured" in message):
        return NO_TOKEN
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

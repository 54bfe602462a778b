"""The deployed app's names and limits, defined once: worker/modal/app.py deploys them and the client side
(checks, calls, the fan-out) reads them. No `modal` import here: the window and the CLI import this cheaply.

Deploy-time overrides come from the environment (read when `modal deploy` imports worker/modal/app.py, and by
the client, so both agree): WHISPER_DESK_GPU, WHISPER_DESK_MAX_CONTAINERS, WHISPER_DESK_TIMEOUT_S,
WHISPER_DESK_STARTUP_TIMEOUT_S, WHISPER_DESK_SCALEDOWN_S, WHISPER_DESK_RETRIES.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

APP_NAME = "whisper-desk"
CLASS_NAME = "Transcriber"
METHOD_NAME = "transcribe"
WORKER_API_VERSION = "2"  # bump when the method's arguments or answer change (2: errors come back as answers)
VERSION_TAG = "whisper_desk_api"  # the App tag carrying WORKER_API_VERSION
VOLUME_NAME = "whisper-desk-models"
CALL_MARGIN_S = 60  # queueing and network on top of Modal's own limits


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise ValueError(f"{name} must not be negative, not {number}")
    return number


@dataclass(frozen=True)
class DeploySettings:
    """Set on purpose, each overridable at deploy time (see the module docstring)."""

    gpu: str = "T4"
    # two files at the app's default 8 containers each run side by side; more work waits in Modal's queue
    max_containers: int = 16
    # one chunk (30 s of audio by default) takes seconds on a T4; 10 minutes means something is wrong
    timeout_s: int = 600
    # a cold container may first download a large model (large-v3: 3 GB) into the Volume
    startup_timeout_s: int = 900
    # a warm container waits this long for the next chunk or file (an idle T4 costs about 2 cents a minute)
    scaledown_s: int = 120
    # Modal re-runs an input whose container was lost (preempted, crashed); our own errors are answers
    retries: int = 2

    @classmethod
    def from_env(cls) -> "DeploySettings":
        base = cls()
        return cls(
            gpu=os.environ.get("WHISPER_DESK_GPU", "").strip() or base.gpu,
            max_containers=_env_int("WHISPER_DESK_MAX_CONTAINERS", base.max_containers),
            timeout_s=_env_int("WHISPER_DESK_TIMEOUT_S", base.timeout_s),
            startup_timeout_s=_env_int("WHISPER_DESK_STARTUP_TIMEOUT_S", base.startup_timeout_s),
            scaledown_s=_env_int("WHISPER_DESK_SCALEDOWN_S", base.scaledown_s),
            retries=_env_int("WHISPER_DESK_RETRIES", base.retries),
        )

    @classmethod
    def as_deployed(cls) -> "DeploySettings":
        """What the client assumes was deployed: the environment's settings, or the defaults where a value there
        is not valid (that is reported by `whisper-desk deploy`, never by a job)."""
        try:
            return cls.from_env()
        except ValueError:
            return cls()

    @property
    def call_timeout_s(self) -> float:
        """How long the client waits for one call: longer than anything Modal may legitimately take for it
        (a cold start that downloads weights, then every allowed run), so it never gives up first."""
        return float(self.startup_timeout_s + self.timeout_s * (self.retries + 1) + CALL_MARGIN_S)

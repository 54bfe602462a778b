"""The deployed app's names and limits, defined once: worker/modal/app.py deploys them and the client side
(checks, calls, the fan-out) reads them. No `modal` import here: the window and the CLI import this cheaply.

Deploy-time overrides come from the environment (read when `modal deploy` imports worker/modal/app.py, and by
`whisper-desk deploy` first, which refuses a value Modal would reject with one line naming the variable):
WHISPER_DESK_GPU, WHISPER_DESK_MAX_CONTAINERS, WHISPER_DESK_TIMEOUT_S, WHISPER_DESK_STARTUP_TIMEOUT_S,
WHISPER_DESK_SCALEDOWN_S, WHISPER_DESK_RETRIES, WHISPER_DESK_CPU, WHISPER_DESK_MEMORY_MIB.
A job reads the limits from the deployed function itself (DeploySettings.from_function_info), never from this
computer's environment.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any

APP_NAME = "whisper-desk"
CLASS_NAME = "Transcriber"
METHOD_NAME = "transcribe"
WORKER_API_VERSION = "2"  # bump when the method's arguments or answer change (2: errors come back as answers)
VERSION_TAG = "whisper_desk_api"  # the App tag carrying WORKER_API_VERSION
STARTUP_TAG = "whisper_desk_startup_timeout_s"  # the App tag with the start-up limit (modal's FunctionInfo lacks it)
VOLUME_NAME = "whisper-desk-models"
CALL_MARGIN_S = 60  # queueing and network on top of Modal's own limits
WEIGHTS_FOLDER = "openai-whisper"  # where the Volume keeps openai-whisper's checkpoints
_CHECKPOINT_FILES = {"turbo": "large-v3-turbo.pt"}  # the file whisper._MODELS names, where it is not MODEL.pt


def checkpoint_file(model: str) -> str:
    """The checkpoint file the Volume holds for `model` (the name in openai-whisper's download URL)."""
    return _CHECKPOINT_FILES.get(model, f"{model}.pt")

# what Modal accepts at deploy (modal 1.6.4: _functions.py, retries.py; a larger timeout is refused by its server)
SCALEDOWN_RANGE_S = (2, 3600)
TIMEOUT_RANGE_S = (1, 86400)
MAX_RETRIES = 10
GPU_TYPES = ("T4", "L4", "A10G", "A10", "L40S", "A100", "A100-40GB", "A100-80GB", "H100", "H200", "B200")


def _env_int(name: str, default: int, low: int, high: int | None = None, why: str = "") -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {value!r}") from None
    if number < low or (high is not None and number > high):
        allowed = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {allowed}{why}, not {number}")
    return number


def _env_float(name: str, default: float, low: float, high: float) -> float:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {value!r}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise ValueError(f"{name} must be from {low:g} to {high:g}, not {value}")
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
    # a warm container waits this long for the next chunk or file; every second of it is billed (see cost.py)
    scaledown_s: int = 120
    # Modal re-runs an input whose container was lost (preempted, crashed); our own errors are answers
    retries: int = 2
    # reserved per container and billed as max(reservation, use): reserving what the worker uses makes the
    # bill predictable (one core decodes and drives the GPU; large-v3's checkpoint passes through RAM)
    cpu: float = 1.0
    memory_mib: int = 4096

    @classmethod
    def from_env(cls) -> "DeploySettings":
        """The settings for a deploy; ValueError (one line naming the variable) for one Modal would refuse."""
        base = cls()
        gpu = os.environ.get("WHISPER_DESK_GPU", "").strip() or base.gpu
        if gpu.split(":")[0].upper() not in GPU_TYPES:
            raise ValueError(f"WHISPER_DESK_GPU must be one of Modal's GPU types ({', '.join(GPU_TYPES)}), not {gpu!r}")
        low, high = SCALEDOWN_RANGE_S
        return cls(
            gpu=gpu,
            max_containers=_env_int("WHISPER_DESK_MAX_CONTAINERS", base.max_containers, 1,
                                    why=" (0 would mean no limit on Modal)"),
            timeout_s=_env_int("WHISPER_DESK_TIMEOUT_S", base.timeout_s, *TIMEOUT_RANGE_S),
            startup_timeout_s=_env_int("WHISPER_DESK_STARTUP_TIMEOUT_S", base.startup_timeout_s, *TIMEOUT_RANGE_S),
            scaledown_s=_env_int("WHISPER_DESK_SCALEDOWN_S", base.scaledown_s, low, high, why=" seconds (Modal's limit)"),
            retries=_env_int("WHISPER_DESK_RETRIES", base.retries, 0, MAX_RETRIES),
            cpu=_env_float("WHISPER_DESK_CPU", base.cpu, 0.125, 64.0),
            memory_mib=_env_int("WHISPER_DESK_MEMORY_MIB", base.memory_mib, 128, 344064),
        )

    @classmethod
    def as_deployed(cls) -> "DeploySettings":
        """What the client assumes before it has asked Modal: the environment's settings, or the defaults where
        a value there is not valid (that is reported by `whisper-desk deploy`, never by a job)."""
        try:
            return cls.from_env()
        except ValueError:
            return cls()

    def from_function_info(self, info: Any) -> "DeploySettings":
        """These settings with the limits the deployed function reports (modal's FunctionInfo: timeout,
        startup_timeout, max_retries, gpus, cpu, memory_mib); what it does not report stays as it is."""
        changes: dict[str, Any] = {}
        if getattr(info, "timeout", None):
            changes["timeout_s"] = int(info.timeout)
        if getattr(info, "startup_timeout", None):
            changes["startup_timeout_s"] = int(info.startup_timeout)
        if getattr(info, "max_retries", None) is not None:
            changes["retries"] = int(info.max_retries)
        gpus = getattr(info, "gpus", None) or []
        if gpus:
            changes["gpu"] = str(gpus[0][0])
        cpu = getattr(info, "cpu", None)
        if cpu:
            changes["cpu"] = float(cpu[0] if isinstance(cpu, tuple) else cpu)
        memory = getattr(info, "memory_mib", None)
        if memory:
            changes["memory_mib"] = int(memory[0] if isinstance(memory, tuple) else memory)
        return replace(self, **changes)

    def with_startup_tag(self, value: str | None) -> "DeploySettings":
        """These settings with the start-up limit STARTUP_TAG records (a value it cannot read changes nothing)."""
        value = (value or "").strip()
        return replace(self, startup_timeout_s=int(value)) if value.isdigit() else self

    @property
    def call_timeout_s(self) -> float:
        """How long the client waits for one call: longer than anything Modal may legitimately take for it
        (a cold start that downloads weights, then every allowed run), so it never gives up first."""
        return float(self.startup_timeout_s + self.timeout_s * (self.retries + 1) + CALL_MARGIN_S)

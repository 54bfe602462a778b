"""Warming the model cache: one call with a second of silence puts a model's weights in the app's Volume."""

from __future__ import annotations

import asyncio
import io
from typing import Any, Callable

from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, ModalSetupError, WhisperDeskError
from worker.modal.bounded import close_client, open_client, run_bounded
from worker.modal.checks import given_or_resolved
from worker.modal.cost import LET_GO_S
from worker.modal.credentials import resolve_environment, resolve_server_url, scrub
from worker.modal.errors import explain_modal_error
from worker.modal.settings import APP_NAME, CLASS_NAME, DeploySettings

WARM_TIMEOUT_S = DeploySettings().startup_timeout_s + DeploySettings().timeout_s  # a cold T4 and a first download


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
        return _timings(model, transcribe(audio, options))
    resolved = given_or_resolved(None, None)
    if isinstance(resolved, str):
        raise ModalSetupError(resolved)
    url = server_url or resolve_server_url()
    environment = resolve_environment()

    async def call() -> dict:
        import modal

        client = await open_client(url, resolved)
        try:
            cls = modal.Cls.from_name(app_name, CLASS_NAME, environment_name=environment, client=client)
            cls = cls.with_options(scaledown_window=LET_GO_S)  # a job's window: no T4 idles 120 s after it
            return await cls(model=model).transcribe.remote.aio(audio, options)
        finally:
            await close_client(client)

    try:
        result = run_bounded(call, timeout_s, cancel)
    except (Cancelled, WhisperDeskError):
        raise
    except (TimeoutError, asyncio.TimeoutError):
        raise ModalSetupError(f"warming {model} did not finish within {timeout_s:g} s: try again later") from None
    except Exception as exc:
        raise ModalSetupError(scrub(explain_modal_error(exc), *resolved.secrets())) from None
    return _timings(model, result)


def _timings(model: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The warm-up call's timings, or ModalSetupError when the worker answered with its own error."""
    if answer.get("error"):
        raise ModalSetupError(f"warming {model} failed: {answer['error']}")
    return dict(answer.get("timings", {}))

"""The deployed worker's failures, through the real `modal` client against the loopback control plane, which
runs the deployed class itself (issue 9, defects 4 and 5): our own errors come back at once as an answer
(never re-run by modal.Retries), infrastructure failures are retried, and a model that fails to load in
@modal.enter reaches the user as one clear line within seconds instead of a crash loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np

from worker.core.cancel import CancelToken
from worker.core.errors import TranscriptionError
from worker.core.options import TranscriptionOptions
from worker.media.chunking import encode_chunk
from worker.modal.settings import APP_NAME, CLASS_NAME, WORKER_API_VERSION

ANSWER_WAIT_S = 120.0  # generous: both cores may be busy; a crash loop would never answer at all


def call_worker(plane, audio: bytes, options: dict, model: str = "tiny.en") -> tuple[str, object]:
    """One `.spawn` + `.get` through the real client: ("answer", dict) or ("raised", exception)."""
    import modal
    from modal_proto import api_pb2

    async def go():
        async with modal.Client(plane.url, api_pb2.CLIENT_TYPE_CLIENT, (plane.token_id, plane.token_secret)) as client:
            cls = modal.Cls.from_name(APP_NAME, CLASS_NAME, client=client)
            call = await cls(model=model).transcribe.spawn.aio(audio, options)
            try:
                return "answer", await call.get.aio(timeout=ANSWER_WAIT_S)
            except Exception as exc:  # what the client raised
                return "raised", exc

    return asyncio.run(asyncio.wait_for(go(), ANSWER_WAIT_S + 30))


def test_bad_audio_is_answered_once_and_never_retried(deployed_modal):
    """Defect 4: the method raised, so the deployed modal.Retries ran bad audio three times on a T4."""
    kind, value = call_worker(deployed_modal, b"this is not audio at all", {"language": "en"})
    assert deployed_modal.wait_idle(30)
    assert kind == "answer", value
    assert value["api_version"] == WORKER_API_VERSION
    assert "not readable audio" in value["error"] and "\n" not in value["error"]
    assert len(deployed_modal.executions) == 1, deployed_modal.executions
    assert deployed_modal.count("FunctionMap") == 1


def test_bad_options_are_answered_once(deployed_modal, jfk: Path):
    kind, value = call_worker(deployed_modal, jfk.read_bytes(), {"beam_size": "wide"})
    assert deployed_modal.wait_idle(30)
    assert kind == "answer" and "bad options" in value["error"], value
    assert len(deployed_modal.executions) == 1


def test_an_infrastructure_failure_is_retried_by_modal_once(deployed_modal):
    """What Retries are for: the method raised something that is not ours (here a lost connection)."""
    deployed_modal.fail_once(0, how="raise")
    kind, value = call_worker(deployed_modal, encode_chunk(np.zeros(2 * 16000, dtype=np.float32)), {"language": "en"})
    assert kind == "answer" and value["duration"] == 2.0 and "error" not in value, value
    assert [e.attempt for e in deployed_modal.executions] == [0, 1]


def test_a_model_that_fails_to_load_is_one_line_within_seconds_without_a_crash_loop(deployed_modal, jfk: Path):
    """Defect 5: a raise in @modal.enter crash-looped the container; the client only learned at its timeout."""
    from worker.modal.fanout import ModalBackend

    deployed_modal.fail_enter()
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["transcript"] = ModalBackend().transcribe(jfk, TranscriptionOptions(language="en"), lambda e: None,
                                                              CancelToken())
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(ANSWER_WAIT_S)
    assert not thread.is_alive(), (
        f"no answer in {ANSWER_WAIT_S:g} s: {deployed_modal.container_crashes} container crashes (a crash loop)"
    )
    error = outcome.get("error")
    assert isinstance(error, TranscriptionError), outcome
    line = str(error)
    assert "\n" not in line and "jfk.flac" in line and "tiny.en model did not load on Modal" in line, line
    assert deployed_modal.container_crashes == 0
    assert deployed_modal.container_starts == 1
    assert len(deployed_modal.executions) == 1  # answered, not retried


def test_an_unknown_model_is_answered_not_crashed(deployed_modal, jfk: Path):
    kind, value = call_worker(deployed_modal, jfk.read_bytes(), {"language": "en"}, model="huge.v9")
    assert kind == "answer" and "unknown model 'huge.v9'" in value["error"], value
    assert deployed_modal.container_crashes == 0


def test_warming_a_model_goes_through_remote_and_reports_a_load_failure(deployed_modal):
    """The wizard's warm-up step: `.remote()` on the deployed class; a model that does not load is an error."""
    import pytest

    from worker.core.errors import ModalSetupError
    from worker.modal.warm import warm_model_volume

    timings = warm_model_volume("tiny.en", timeout_s=ANSWER_WAIT_S)
    assert timings["audio_s"] == 1.0 and "model_load_s" in timings
    assert deployed_modal.count("FunctionMap") == 1 and len(deployed_modal.executions) == 1

    deployed_modal.fail_enter()
    with pytest.raises(ModalSetupError) as caught:
        warm_model_volume("tiny.en", timeout_s=ANSWER_WAIT_S)
    assert "tiny.en model did not load on Modal" in str(caught.value) and "\n" not in str(caught.value)
    assert deployed_modal.container_crashes == 0


def test_a_container_whose_model_failed_to_load_tries_again_on_its_next_input(deployed_modal):
    """A failed load is not sticky: once the Volume is good again, the same warm container answers."""
    two_seconds = encode_chunk(np.zeros(2 * 16000, dtype=np.float32))
    deployed_modal.fail_enter()
    kind, value = call_worker(deployed_modal, two_seconds, {"language": "en"})
    assert kind == "answer" and "did not load" in value.get("error", ""), value
    deployed_modal.heal_enter()
    kind, value = call_worker(deployed_modal, two_seconds, {"language": "en"})
    assert kind == "answer" and "error" not in value and value["duration"] == 2.0, value
    assert deployed_modal.container_starts == 1 and deployed_modal.container_crashes == 0

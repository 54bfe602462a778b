"""What the fan-out does with an answer it cannot use, through the real `modal` client against the loopback
control plane (issue 17, defects 4 and 6): an answer from an old deployment is not kept as finished, and a call
stopped on Modal (the dashboard, `modal app stop`) is said to be stopped there, and a retry sends it again."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modal_control_plane import Faults  # noqa: E402
from modal_fixtures import wait_for  # noqa: E402
from speech_text import JFK_PHRASE, normalise  # noqa: E402

from worker.core.cancel import CancelToken  # noqa: E402
from worker.core.errors import TranscriptionError  # noqa: E402
from worker.core.options import TranscriptionOptions  # noqa: E402
from worker.modal.fanout import (
    ModalBackend,  # noqa: E402
    RunLedger,  # noqa: E402
)
from worker.modal.settings import APP_NAME, WORKER_API_VERSION  # noqa: E402

ENGLISH = TranscriptionOptions(language="en", beam_size=1)
MIT_PHRASE = "permission is hereby granted"


def test_an_answer_from_an_old_deployment_is_not_kept_as_finished(cp, jfk, monkeypatch):
    """Defect 4: the ledger marked the chunk finished before the answer's api_version was checked, so every
    retry collected the same old answer again (for the 7 days Modal keeps it) and failed."""
    import worker.modal.app as deployed

    monkeypatch.setattr(deployed, "WORKER_API_VERSION", "1")  # the deployed worker is an old one
    ledger = RunLedger()
    with pytest.raises(TranscriptionError) as caught:
        ModalBackend().transcribe(jfk, ENGLISH, lambda event: None, CancelToken(), ledger=ledger)
    line = str(caught.value)
    assert "speaks API v1" in line and "whisper-desk deploy" in line and "\n" not in line, line
    assert not [entry for entry in ledger.entries() if entry.finished]  # nothing kept to collect again

    monkeypatch.setattr(deployed, "WORKER_API_VERSION", WORKER_API_VERSION)  # `whisper-desk deploy` ran
    assert cp.wait_idle(30)
    maps = cp.count("FunctionMap")
    transcript = ModalBackend().transcribe(jfk, ENGLISH, lambda event: None, CancelToken(), ledger=ledger)
    assert JFK_PHRASE in normalise(transcript.text)
    assert cp.count("FunctionMap") - maps == 1  # the chunk was asked anew, not its old answer collected
    assert ledger.entries() == []


def run_in_thread(path: Path, ledger: RunLedger, **settings) -> tuple[threading.Thread, dict]:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["transcript"] = ModalBackend(**settings).transcribe(path, ENGLISH, lambda e: None, CancelToken(),
                                                                        ledger=ledger)
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("how", ["dashboard", "app stop"])
def test_a_call_stopped_on_modal_says_so_and_a_retry_sends_only_that_chunk_again(cp, medley, how):
    """Defect 6: a call stopped from Modal's dashboard or by `modal app stop` ends TERMINATED (modal's get raises
    RemoteError); the job said "worker failed … redeploy". It says the call was stopped on Modal, forgets that
    chunk only, and a retry of the job sends it again and collects the chunks that had answered."""
    cp.slow(lambda record: record.ordinal == 2, 60.0)  # the third chunk is still running when it is stopped
    ledger = RunLedger()
    thread, outcome = run_in_thread(medley, ledger, chunk_s=12.0, max_containers=2, retry_delay_s=0.05)
    # the client's view, not the plane's: an answer the plane has produced may not have been read yet
    wait_for(lambda: len(cp.calls) >= 3 and sum(entry.finished for entry in ledger.entries()) >= 2,
             180, "two answers collected and a third call")
    third = next(call_id for call_id, call in cp.calls.items() if call.record and call.record.ordinal == 2)
    if how == "dashboard":
        cp.terminate(third)
    else:
        cp.stop_app(APP_NAME)
    thread.join(120)
    assert not thread.is_alive()
    error = outcome.get("error")
    assert isinstance(error, TranscriptionError), outcome
    line = str(error)
    assert "medley.flac: chunk " in line and "was stopped on Modal" in line and "\n" not in line, line
    assert "retry the job to send this chunk again" in line and "redeploy" not in line, line
    assert third not in cp.cancelled_calls  # the client did not stop it: Modal did
    kept = ledger.entries()
    assert third not in {entry.call_id for entry in kept}  # the stopped chunk is forgotten: a retry sends it
    finished = [entry for entry in kept if entry.finished]
    assert len(finished) >= 2 and all(entry.call_id != third for entry in finished)
    if how == "app stop":
        return  # the app is gone: a retry needs `whisper-desk deploy` first

    cp.faults = Faults()
    assert cp.wait_idle(60)
    maps = cp.count("FunctionMap")
    transcript = ModalBackend(chunk_s=12.0, max_containers=2).transcribe(medley, ENGLISH, lambda e: None,
                                                                         CancelToken(), ledger=ledger)
    text = normalise(transcript.text)
    assert text.count(JFK_PHRASE) == 3 and MIT_PHRASE in text
    chunks = transcript.timings["chunk_count"]
    assert cp.count("FunctionMap") - maps == chunks - len(finished)  # the answered chunks were collected

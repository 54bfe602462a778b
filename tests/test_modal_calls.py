"""The ledger of a job's Modal calls: written the moment a call exists, kept across a restart of the app."""

from __future__ import annotations

from pathlib import Path

from worker.backends.base import SentChunk
from worker.core.options import TranscriptionOptions
from worker.library.job_status import JobStatus
from worker.library.library import Library
from worker.modal.fanout import RunLedger


def test_library_ledger_survives_reopening_and_is_per_job(tmp_path: Path) -> None:
    path = tmp_path / "lib.sqlite3"
    library = Library(path)
    job = library.jobs.add("/audio/long.m4a", TranscriptionOptions(), "modal")
    other = library.jobs.add("/audio/other.m4a", TranscriptionOptions(), "modal")
    ledger = library.chunk_ledger(job.id)
    ledger.sent(0, 0.0, 30.2, "fc-first")
    ledger.sent(1, 30.2, 59.8, "fc-second")
    ledger.finished(0)
    library.chunk_ledger(other.id).sent(0, 0.0, 12.0, "fc-other")
    library.close()

    reopened = Library(path)
    assert reopened.chunk_ledger(job.id).entries() == [
        SentChunk(0, 0.0, 30.2, "fc-first", True),
        SentChunk(1, 30.2, 59.8, "fc-second", False),
    ]
    ledger = reopened.chunk_ledger(job.id)
    ledger.sent(1, 30.2, 59.8, "fc-second-again")  # a re-spawn replaces the chunk's call
    ledger.forget(0)
    assert [(e.index, e.call_id, e.finished) for e in ledger.entries()] == [(1, "fc-second-again", False)]
    ledger.clear()
    assert ledger.entries() == []
    assert [e.call_id for e in reopened.chunk_ledger(other.id).entries()] == ["fc-other"]
    reopened.jobs.remove(other.id)  # removing a job drops its calls
    assert reopened.chunk_ledger(other.id).entries() == []


def test_memory_ledger_answers_like_the_library_one() -> None:
    ledger = RunLedger()
    ledger.sent(2, 60.0, 90.0, "fc-c")
    ledger.sent(0, 0.0, 30.0, "fc-a")
    ledger.finished(2)
    assert ledger.entries() == [SentChunk(0, 0.0, 30.0, "fc-a"), SentChunk(2, 60.0, 90.0, "fc-c", True)]
    ledger.clear()
    assert ledger.entries() == []


# ---------------------------------------------------------------- the fan-out's calls, against the stand-in

import asyncio  # noqa: E402
import threading  # noqa: E402

import pytest  # noqa: E402

from tests.modal_standin import StandInRemote  # noqa: E402
from worker.backends.events import Progress, SegmentsReady  # noqa: E402
from worker.core.cancel import CancelToken  # noqa: E402
from worker.core.errors import Cancelled  # noqa: E402
from worker.modal.fanout import ModalBackend  # noqa: E402

ENGLISH = TranscriptionOptions(language="en", beam_size=1)


@pytest.fixture(scope="module")
def minute_of_speech(shared_audio) -> Path:
    return shared_audio / "multilingual.mp3"  # 60 s of dense speech: 6 chunks of 10 s


def events_of(kind, events):
    return [e for e in events if isinstance(e, kind)]


def test_a_dropped_poll_asks_the_same_call_again_and_runs_nothing_twice(minute_of_speech):
    remote = StandInRemote(run_model=False, latency_s=0.05, drop_polls={1: 2, 4: 1})
    events: list = []
    transcript = ModalBackend(remote=remote, chunk_s=10.0, retry_delay_s=0.01).transcribe(
        minute_of_speech, ENGLISH, events.append, CancelToken()
    )
    count = transcript.timings["chunk_count"]
    assert remote.polls_dropped == 3
    assert [remote.calls_by_chunk[i] for i in range(count)] == [1] * count
    assert remote.cancel_requests == []
    assert any(e.message.startswith("asking again for chunk 2 of") for e in events_of(Progress, events))


def test_a_cancel_while_waiting_to_ask_again_still_cancels_that_call(minute_of_speech):
    remote = StandInRemote(run_model=False, latency_s=0.05, drop_polls={1: 5})
    cancel = CancelToken()

    def on_event(event) -> None:
        if isinstance(event, Progress) and event.message.startswith("asking again for chunk 2 of"):
            cancel.cancel()  # during the pause before chunk 2's call is asked again

    with pytest.raises(Cancelled):
        ModalBackend(remote=remote, chunk_s=10.0, retry_delay_s=5.0).transcribe(minute_of_speech, ENGLISH, on_event, cancel)
    [chunk_2_call] = [call_id for call_id, (index, _run) in remote._calls.items() if index == 1]
    assert chunk_2_call in remote.cancel_requests


def test_a_call_that_ended_without_an_answer_is_sent_once_more(minute_of_speech):
    remote = StandInRemote(run_model=False, fail_chunks={2: 1})
    transcript = ModalBackend(remote=remote, chunk_s=10.0, retry_delay_s=0.01).transcribe(
        minute_of_speech, ENGLISH, lambda e: None, CancelToken()
    )
    count = transcript.timings["chunk_count"]
    assert [remote.calls_by_chunk[i] for i in range(count)] == [1, 1, 2] + [1] * (count - 3)


def test_cancel_while_a_spawn_is_under_way_still_cancels_its_call(minute_of_speech):
    started = threading.Event()

    class SlowUpload(StandInRemote):
        async def spawn(self, audio, options, chunk_index=0):
            started.set()
            await asyncio.sleep(0.5)  # the upload and FunctionMap take a while; the call exists after them
            return await super().spawn(audio, options, chunk_index)

    remote = SlowUpload(run_model=False, latency_s=30.0)
    cancel = CancelToken()
    threading.Thread(target=lambda: (started.wait(10), cancel.cancel())).start()
    with pytest.raises(Cancelled):
        ModalBackend(remote=remote, chunk_s=10.0, max_containers=3).transcribe(minute_of_speech, ENGLISH, lambda e: None, cancel)
    assert len(remote._calls) >= 1  # the spawns under way at the cancel made their calls after it
    assert sorted(remote.cancel_requests) == sorted(remote._calls)
    assert remote.in_flight == 0


def test_an_interrupted_job_collects_its_finished_calls_instead_of_running_them_again(tmp_path, minute_of_speech):
    library = Library(tmp_path / "lib.sqlite3")
    job = library.jobs.add(minute_of_speech, ENGLISH, "modal")
    remote = StandInRemote(run_model=False, latency_s=0.05, chunk_latency_s={3: 5.0, 4: 5.0, 5: 5.0})
    backend = ModalBackend(remote=remote, chunk_s=10.0, max_containers=6)
    cancel = CancelToken()

    def stop_after_three(event) -> None:
        if isinstance(event, SegmentsReady) and event.chunk_index == 2:
            threading.Thread(target=cancel.cancel).start()

    with pytest.raises(Cancelled):
        backend.transcribe(minute_of_speech, ENGLISH, stop_after_three, cancel, ledger=library.chunk_ledger(job.id))
    kept = library.chunk_ledger(job.id).entries()
    assert [(e.index, e.finished) for e in kept] == [(0, True), (1, True), (2, True)]  # the cancelled ones: forgotten
    sent_first = {call_id: index for call_id, (index, _run) in remote._calls.items()}
    assert sorted(remote.cancel_requests) == sorted(c for c, index in sent_first.items() if index >= 3)

    remote.chunk_latency_s.clear()
    events: list = []
    transcript = backend.transcribe(minute_of_speech, ENGLISH, events.append, CancelToken(), ledger=library.chunk_ledger(job.id))
    count = transcript.timings["chunk_count"]
    assert [s.text for s in transcript.segments] == [f"stand-in chunk {i + 1}" for i in range(count)]
    assert [remote.calls_by_chunk[i] for i in range(3)] == [1, 1, 1]  # collected, not run again
    sent_before = set(sent_first.values())
    assert [remote.calls_by_chunk[i] for i in range(3, count)] == [1 + (i in sent_before) for i in range(3, count)]
    assert "collecting 3 chunks already sent to Modal" in [e.message for e in events_of(Progress, events)]
    assert library.chunk_ledger(job.id).entries() == []  # done: nothing left to collect


def test_expired_answers_are_run_again(tmp_path, minute_of_speech):
    library = Library(tmp_path / "lib.sqlite3")
    job = library.jobs.add(minute_of_speech, ENGLISH, "modal")
    remote = StandInRemote(run_model=False)
    ledger = library.chunk_ledger(job.id)
    first = ModalBackend(remote=remote, chunk_s=10.0).transcribe(minute_of_speech, ENGLISH, lambda e: None, CancelToken())
    count = first.timings["chunk_count"]
    for index, call_id in enumerate(sorted(remote._calls, key=lambda c: int(c.rsplit("-", 1)[1]))):
        ledger.sent(index, first.timings["chunks"][index]["chunk_start_s"], 0.0, call_id)  # ends unknown: re-cut
    remote.forget_outputs()
    again = ModalBackend(remote=remote, chunk_s=10.0, retry_delay_s=0.01).transcribe(
        minute_of_speech, ENGLISH, lambda e: None, CancelToken(), ledger=ledger
    )
    assert [s.text for s in again.segments] == [s.text for s in first.segments]
    assert [remote.calls_by_chunk[i] for i in range(count)] == [2] * count


# ---------------------------------------------------------------- cost before and after


def test_a_queued_modal_job_shows_a_cost_range_that_grows_with_cold_starts_and_the_model(tmp_path):
    from PySide6.QtCore import Qt

    from gui.queue_model import PROGRESS, QueueModel
    from worker.modal.cost import estimate_modal_cost

    warm_low = estimate_modal_cost(600.0, "tiny.en", 0.59, chunk_s=30.0, max_containers=8)
    assert 0 < warm_low.usd_low < warm_low.usd_high and warm_low.cold_containers == 8
    assert estimate_modal_cost(600.0, "medium", 0.59).usd_low > warm_low.usd_low  # a bigger model costs more
    doubled = estimate_modal_cost(600.0, "tiny.en", 1.18)  # the GPU's rate doubled (CPU and memory are billed too)
    assert warm_low.usd_high < doubled.usd_high < 2 * warm_low.usd_high
    assert estimate_modal_cost(20.0, "tiny.en").cold_containers == 1  # one chunk: one container
    assert "idle until scale-down" in warm_low.line()  # the idle tail is in the estimate, not left out

    library = Library(tmp_path / "lib.sqlite3")
    modal_job = library.jobs.add("/audio/talk.m4a", TranscriptionOptions(model="tiny.en"), "modal")
    local_job = library.jobs.add("/audio/talk.m4a", TranscriptionOptions(model="tiny.en"), "local")
    library.jobs.set_duration(modal_job.id, 600.0)
    library.jobs.set_duration(local_job.id, 600.0)
    model = QueueModel()
    model.modal_settings = {"dollars_per_hour": 0.59, "chunk_s": 30.0, "max_containers": 8, "other": 1}
    model.set_jobs(library.jobs.all())
    cell = model.data(model.index(0, PROGRESS), Qt.ItemDataRole.DisplayRole)
    assert cell == f"queued · {warm_low.short()}"
    assert warm_low.line() in model.data(model.index(0, PROGRESS), Qt.ItemDataRole.ToolTipRole)
    assert model.data(model.index(1, PROGRESS), Qt.ItemDataRole.DisplayRole) == "queued"  # local: nothing billed
    library.jobs.mark_ended(modal_job.id, JobStatus.DONE, finished=1.0)
    model.set_jobs(library.jobs.all())
    assert model.data(model.index(0, PROGRESS), Qt.ItemDataRole.DisplayRole) == "done"

"""Closing is not cancelling (issue 9, detached cloud jobs), through the real `modal` client against the
loopback control plane (tests/modal_control_plane.py), which runs the deployed worker class with tiny.en.

What a user would check: closing the app during a Modal job (JobQueue.shutdown with requeue) leaves the calls
it sent running on Modal, quickly and quietly; at the next start the job collects them and sends only the
chunks never sent, so every chunk runs exactly once and the transcript is right. A Cancel (the user's, or the
CLI's Ctrl-C: shutdown without requeue) still stops every call sent and not finished.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modal_control_plane import ControlPlane, Faults  # noqa: E402
from modal_fixtures import wait_for  # noqa: E402
from speech_text import JFK_PHRASE, normalise  # noqa: E402

from worker.core.cancel import CancelToken  # noqa: E402
from worker.jobs.preferences import Preferences  # noqa: E402
from worker.jobs.events import JobFinished, JobProgress
from worker.jobs.queue import JobQueue
from worker.library.job_status import JobStatus  # noqa: E402
from worker.library.library import Library  # noqa: E402

MIT_PHRASE = "permission is hereby granted"
NOISE = ("Task was destroyed", "Event loop is closed", "never retrieved", "coroutine was never awaited")
SLOW_S = 12.0  # calls after the first two are still running when the app closes


class Listener:
    """The queue's listener: every event, and the job's end."""

    def __init__(self) -> None:
        self.events: list = []
        self.finished = threading.Event()

    def __call__(self, event) -> None:
        self.events.append(event)
        if isinstance(event, JobFinished):
            self.finished.set()

    def labels(self) -> list[str]:
        return [event.label for event in list(self.events) if isinstance(event, JobProgress)]


def modal_queue(library: Library, listener: Listener) -> JobQueue:
    preferences = Preferences(backend="modal", language="en", chunk_s=12.0, max_containers=2)
    return JobQueue(library, preferences, listener, modal_ready=lambda: True)


def restart_and_finish(cp: ControlPlane, library_path: Path) -> tuple[Library, Listener]:
    """The next start, with the plane's faults cleared: the job restored from the library runs to its end."""
    cp.faults = Faults()
    library = Library(library_path)
    listener = Listener()
    queue = modal_queue(library, listener)
    queue.restore()
    queue.start()
    assert listener.finished.wait(300), listener.labels()
    assert queue.shutdown(requeue=True)
    return library, listener


def answered(plane: ControlPlane) -> set[str]:
    return {call_id for call_id, call in list(plane.calls.items()) if call.output is not None
            and call.output.result.status == 1}  # GENERIC_STATUS_SUCCESS


def start_mid_job(plane: ControlPlane, library: Library, medley: Path) -> tuple[JobQueue, Listener, int]:
    """A Modal job through a queue, with two chunks answered and two more calls still running."""
    plane.slow(lambda record: record.ordinal >= 2, SLOW_S)
    listener = Listener()
    queue = modal_queue(library, listener)
    queue.restore()
    [record] = queue.add_files([medley])
    queue.start()
    wait_for(lambda: len(answered(plane)) >= 2 and len(plane.calls) >= 4, 240, "two answers and four calls")
    wait_for(lambda: sum(e.finished for e in library.chunk_ledger(record.id).entries()) >= 2, 30,
             "the two answers reaching the job")
    return queue, listener, record.id


def quiet(caplog, capfd) -> list[str]:
    """Lines of the asyncio noise a closed loop with pending tasks prints (none expected)."""
    gc.collect()  # a pending task destroyed is reported when it is collected
    lines = [record.getMessage() for record in caplog.records] + capfd.readouterr().err.splitlines()
    return [line for line in lines if any(noise in line for noise in NOISE)]


def test_closing_leaves_the_calls_on_modal_and_the_next_start_collects_them(cp, medley, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="asyncio")
    library_path = tmp_path / "library.sqlite3"
    library = Library(library_path)
    queue, _, job_id = start_mid_job(cp, library, medley)
    running = {call_id for call_id, call in cp.calls.items() if not call.done.is_set()}
    assert running, "no call was still running when the app closed"

    started = time.monotonic()
    assert queue.shutdown(requeue=True)  # the window closes
    closed_in = time.monotonic() - started
    assert closed_in < 8.0, f"closing took {closed_in:.1f} s"
    assert cp.count("FunctionCallCancel") == 0 and cp.cancelled_calls == []  # a close is not a cancel
    assert library.jobs.get(job_id).status == JobStatus.QUEUED
    ledger = library.chunk_ledger(job_id).entries()
    sent_before, maps_before = len(cp.calls), cp.count("FunctionMap")
    assert {entry.call_id for entry in ledger} == set(cp.calls)  # every call sent is written down
    assert {entry.call_id for entry in ledger if not entry.finished} >= running
    note = [line for line in library.log.lines(job_id) if "still running on Modal" in line]
    assert note and f"with {len(running)} chunk" in note[-1], library.log.lines(job_id)  # the job's log says so
    assert not quiet(caplog, capfd)
    library.close()
    assert not any(cp.calls[call_id].cancelled.is_set() for call_id in running)  # they run on, on Modal

    # the next start, while some of those calls are still running
    library, listener = restart_and_finish(cp, library_path)
    record = library.jobs.get(job_id)
    assert record.status == JobStatus.DONE, (record.error, listener.labels())
    assert f"collecting {sent_before} chunks already sent to Modal" in listener.labels()
    assert cp.wait_idle(60)
    chunks = len(cp.calls)
    assert chunks >= 5 and chunks > sent_before  # some chunks were never sent before the close
    assert sorted(cp.executions_per_audio().values()) == [1] * chunks  # every chunk ran exactly once
    assert cp.count("FunctionMap") - maps_before == chunks - sent_before  # only chunks never sent went out
    assert cp.count("FunctionCallCancel") == 0
    text = normalise(library.transcripts.get(job_id).text)
    assert text.count(JFK_PHRASE) == 3 and MIT_PHRASE in text, text
    assert library.chunk_ledger(job_id).entries() == []  # done: nothing left to collect
    assert not quiet(caplog, capfd)
    library.close()
    print(f"closed in {closed_in:.2f} s, leaving {len(running)} calls running; {chunks} chunks, each run once")


def test_closing_while_a_chunk_is_being_sent_writes_its_call_down(cp, medley, tmp_path):
    """A close during a spawn (the upload or FunctionMap under way) waits, bounded, for the call it makes and
    writes it down: the next start collects it instead of sending that chunk again."""
    library_path = tmp_path / "library.sqlite3"
    library = Library(library_path)
    cp.delay_rpc("FunctionMap", 2.5)  # the calls exist only when FunctionMap answers (within CANCEL_GRACE_S)
    queue = modal_queue(library, Listener())
    [record] = queue.add_files([medley])
    queue.start()
    wait_for(lambda: cp.count("FunctionMap") >= 1, 240, "a FunctionMap under way")
    assert not cp.calls
    started = time.monotonic()
    assert queue.shutdown(requeue=True)
    assert time.monotonic() - started < 8.0
    sent_before, maps_before = len(cp.calls), cp.count("FunctionMap")
    assert sent_before >= 1 and cp.count("FunctionCallCancel") == 0
    assert {entry.call_id for entry in library.chunk_ledger(record.id).entries()} == set(cp.calls)
    library.close()

    library, listener = restart_and_finish(cp, library_path)
    assert library.jobs.get(record.id).status == JobStatus.DONE, listener.labels()
    assert cp.wait_idle(60)
    chunks = len(cp.calls)
    assert sorted(cp.executions_per_audio().values()) == [1] * chunks
    assert cp.count("FunctionMap") - maps_before == chunks - sent_before
    assert cp.count("FunctionCallCancel") == 0
    text = normalise(library.transcripts.get(record.id).text)
    assert text.count(JFK_PHRASE) == 3 and MIT_PHRASE in text, text
    library.close()


@pytest.mark.parametrize("how", ["cancel", "shutdown-without-requeue"])
def test_a_cancel_still_stops_every_call_sent_and_not_finished(cp, medley, tmp_path, how):
    """The user's Cancel (queue.cancel) and the CLI's Ctrl-C (shutdown(requeue=False)) stop what they pay for."""
    library = Library(tmp_path / "library.sqlite3")
    queue, listener, job_id = start_mid_job(cp, library, medley)
    if how == "cancel":
        queue.cancel([job_id])
        assert listener.finished.wait(30)
        assert queue.shutdown(requeue=True)
    else:
        assert queue.shutdown(requeue=False)
    assert library.jobs.get(job_id).status == JobStatus.CANCELLED
    assert cp.wait_idle(30)
    done = answered(cp)
    assert len(done) >= 2
    assert set(cp.calls) - done <= set(cp.cancelled_calls)  # every call sent and not finished was cancelled
    assert len(cp.executions) == len(done)  # none of the cancelled ones ran
    assert {entry.call_id for entry in library.chunk_ledger(job_id).entries()} == done  # finished ones kept
    library.close()


def test_detach_stops_like_cancel_and_says_it_was_a_detach():
    token, calls = CancelToken(), []
    token.on_cancel(lambda: calls.append("stopped"))
    token.detach()
    assert token.cancelled and token.detached and calls == ["stopped"]
    token.cancel()  # the first of the two decides
    assert token.detached and calls == ["stopped"]

    cancelled = CancelToken()
    cancelled.cancel()
    cancelled.detach()
    assert cancelled.cancelled and not cancelled.detached

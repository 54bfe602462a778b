"""The Modal path through the real `modal` client (1.6.x), against the loopback control plane
(tests/modal_control_plane.py), which runs the deployed worker class for real with tiny.en.

What a user would check: a long file runs each chunk exactly once and the transcript is right; a hiccup costs
at most one extra run and a refused chunk none; Ctrl-C and Cancel stop every call on Modal; a job killed
half-way collects its calls when it runs again instead of paying for them twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import jiwer
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modal_control_plane import ControlPlane, Faults  # noqa: E402
from modal_fixtures import wait_for  # noqa: E402
from speech_text import JFK_PHRASE, JFK_REFERENCE, normalise  # noqa: E402

from worker.backends.events import Progress, SegmentsReady
from worker.core.cancel import CancelToken  # noqa: E402
from worker.core.errors import Cancelled, TranscriptionError  # noqa: E402
from worker.core.options import TranscriptionOptions  # noqa: E402
from worker.library.library import Library  # noqa: E402
from worker.modal.fanout import ModalBackend  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENGLISH = TranscriptionOptions(language="en", beam_size=1)
MIT_PHRASE = "permission is hereby granted"
NOISE = ("Traceback", "Task was destroyed", "Event loop is closed", "never retrieved", "coroutine was never awaited")


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "worker.cli", *args], cwd=ROOT, env=dict(os.environ),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def runs_per_chunk(plane: ControlPlane) -> list[int]:
    """How many times each distinct chunk ran on the plane's containers."""
    return sorted(plane.executions_per_audio().values())


def unfinished_when_cancelled(plane: ControlPlane) -> set[str]:
    """Calls sent that had no output when the client cancelled them, or have none now."""
    return {call_id for call_id, call in plane.calls.items() if call_id in plane.cancelled_calls or not call.done.is_set()}


# ---------------------------------------------------------------- a long file


def test_cli_long_file_runs_each_chunk_once_and_the_transcript_is_right(cp, medley):
    app = cli("transcribe", str(medley), "--backend", "modal", "--chunk-seconds", "12", "--max-containers", "3")
    stdout, stderr = app.communicate(timeout=900)
    assert app.returncode == 0, stderr
    text = normalise(stdout)
    assert text.count(JFK_PHRASE) == 3, stdout
    assert MIT_PHRASE in text
    chunks = len(cp.calls_sent)
    assert chunks >= 5
    assert runs_per_chunk(cp) == [1] * chunks  # each chunk ran exactly once
    assert cp.count("BlobCreate") == cp.count("HTTP PUT") == chunks  # and went up once: BlobCreate, PUT, FunctionMap
    assert cp.blob_bytes_in <= 1_000_000 * 74.0 / 60  # within 1 MB per audio minute
    assert cp.count("FunctionBindParams") == 1  # the model is bound once per job, not once per chunk
    assert cp.count("FunctionCallCancel") == 0
    assert not any(noise in stderr for noise in NOISE), stderr


# ---------------------------------------------------------------- the model is bound once, when connecting


def delay_rpc(plane: ControlPlane, name: str, seconds: float, monkeypatch) -> None:
    """The plane answers RPC `name` only after `seconds` (its other RPCs go on meanwhile)."""
    [key] = [key for key in plane._server._mapping if key.endswith("/" + name)]
    handler = plane._server._mapping[key]

    async def later(stream) -> None:
        await asyncio.sleep(seconds)
        await handler.func(stream)

    monkeypatch.setitem(plane._server._mapping, key, handler._replace(func=later))


def test_the_model_is_bound_once_per_job_when_connecting(cp, medley, monkeypatch):
    """Defect 7: FunctionBindParams went out lazily with each concurrent first spawn (8 chunks, 8 binds)."""
    delay_rpc(cp, "FunctionBindParams", 1.0, monkeypatch)  # the first chunks are ready while the bind is under way
    thread, outcome, _ = transcribe_in_thread(medley, chunk_s=12.0, max_containers=4)
    transcript = finish(thread, outcome).get("transcript")
    assert transcript is not None, outcome
    assert transcript.timings["chunk_count"] >= 5
    assert cp.count("FunctionBindParams") == 1
    binds = [name for name in cp.rpcs if name in ("FunctionBindParams", "FunctionMap")]
    assert binds[0] == "FunctionBindParams"  # bound before the first call went out


def test_a_bind_that_fails_fails_the_connect_step_before_any_upload(cp, jfk, monkeypatch):
    import grpclib
    from grpclib.const import Status

    from worker.core.errors import ModalSetupError

    class Refused(dict):
        def __setitem__(self, key, value):
            raise grpclib.GRPCError(Status.INVALID_ARGUMENT, "the class parameter model is not valid here")

    monkeypatch.setattr(cp, "_bound", Refused())
    started = time.monotonic()
    thread, outcome, _ = transcribe_in_thread(jfk, chunk_s=4.0, connect_timeout_s=10.0)
    error = finish(thread, outcome, 60).get("error")
    assert isinstance(error, ModalSetupError), outcome
    assert time.monotonic() - started < 15 and "\n" not in str(error)
    assert cp.count("FunctionBindParams") >= 1
    assert cp.count("BlobCreate") == 0 and cp.count("FunctionMap") == 0  # nothing uploaded, nothing ran


# ---------------------------------------------------------------- retries: nothing runs twice by our doing


def transcribe_in_thread(path: Path, options=ENGLISH, cancel: CancelToken | None = None, **settings):
    """ModalBackend(**settings).transcribe in a thread: (thread, outcome dict with "transcript" or "error",
    events list)."""
    outcome: dict[str, object] = {}
    events: list = []
    token = cancel or CancelToken()

    def run() -> None:
        try:
            outcome["transcript"] = ModalBackend(**settings).transcribe(path, options, events.append, token)
        except BaseException as exc:  # handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome, events


def finish(thread: threading.Thread, outcome: dict, timeout_s: float = 300.0):
    thread.join(timeout_s)
    assert not thread.is_alive(), "the job did not end"
    return outcome


def test_a_dropped_connection_while_polling_asks_the_same_call_again(cp, jfk):
    """Defect 3: a transient error from `get` spawned the chunk again while its first call ran on."""
    cp.slow(None, 1.0)  # every call is still running when its polls lose their connection
    cp.drop_polls(12)  # modal retries a few itself; the rest reach the fan-out
    thread, outcome, events = transcribe_in_thread(jfk, chunk_s=4.0, retry_delay_s=0.05)
    transcript = finish(thread, outcome).get("transcript")
    assert transcript is not None, outcome
    assert jiwer.wer(JFK_REFERENCE, normalise(transcript.text)) <= 0.1, transcript.text  # short chunks: a seam word may go
    chunks = transcript.timings["chunk_count"]
    assert chunks >= 2 and cp.dropped_polls == 12
    assert cp.count("FunctionMap") == cp.count("BlobCreate") == cp.count("HTTP PUT") == chunks  # never sent again
    assert runs_per_chunk(cp) == [1] * chunks
    assert any(isinstance(e, Progress) and e.message.startswith("asking again for chunk") for e in events)


def test_a_transient_failure_costs_one_extra_run_at_most(cp, jfk):
    cp.fail_once(0, how="internal")  # the container was lost: the client sees InternalFailure and sends it again
    cp.fail_once(1, how="raise")  # the method raised something not ours: the deployed Retries run it again
    thread, outcome, _ = transcribe_in_thread(jfk, chunk_s=4.0, retry_delay_s=0.05)
    transcript = finish(thread, outcome).get("transcript")
    assert transcript is not None, outcome
    assert jiwer.wer(JFK_REFERENCE, normalise(transcript.text)) <= 0.1, transcript.text  # short chunks: a seam word may go
    chunks = transcript.timings["chunk_count"]
    assert runs_per_chunk(cp) == [1] * (chunks - 2) + [2, 2]
    assert cp.count("FunctionCallCancel") == 0


def test_a_refused_chunk_runs_once_and_fails_its_job_at_once(cp, jfk):
    english_only = TranscriptionOptions(model="tiny.en", task="translate")
    thread, outcome, _ = transcribe_in_thread(jfk, english_only)
    error = finish(thread, outcome, 120).get("error")
    assert isinstance(error, TranscriptionError), outcome
    assert str(error).startswith("jfk.flac: chunk 1 of 1") and "English-only" in str(error) and "\n" not in str(error)
    assert cp.wait_idle(30)
    assert len(cp.executions) == 1  # answered once, never re-run


# ---------------------------------------------------------------- cancel


def test_a_cancel_while_a_call_is_being_sent_still_cancels_it(cp, jfk, monkeypatch):
    """Defect 8: a cancel that came during spawn (blob upload, FunctionMap) left the call it made running."""
    mapping = threading.Event()
    original = cp._map
    maps = {"started": 0, "answered": 0}

    def slow_map(request):
        maps["started"] += 1
        mapping.set()
        time.sleep(1.5)  # FunctionMap takes a while; the call exists when it answers
        try:
            return original(request)
        finally:
            maps["answered"] += 1

    monkeypatch.setattr(cp, "_map", slow_map)
    cp.slow(None, 30.0)
    cancel = CancelToken()
    thread, outcome, _ = transcribe_in_thread(jfk, cancel=cancel, chunk_s=4.0)
    assert mapping.wait(120)
    cancel.cancel()
    assert isinstance(finish(thread, outcome, 60).get("error"), Cancelled), outcome
    wait_for(lambda: maps["answered"] == maps["started"], 30, "the FunctionMaps under way")
    time.sleep(0.5)  # a FunctionCallCancel the client sends for them arrives now, or never
    assert cp.wait_idle(30)
    assert cp.calls, "no call was made"
    assert set(cp.calls) <= set(cp.cancelled_calls)  # every call made, even after the cancel, was cancelled
    assert cp.executions == []


def test_cancel_stops_every_call_sent_and_not_finished(cp, medley):
    cp.slow(lambda record: record.ordinal >= 2, 60.0)  # two chunks answer, the rest are still running
    cancel = CancelToken()
    # two calls in flight until one answers: the first two inputs are chunks 1 and 2, in whatever order they arrive
    thread, outcome, events = transcribe_in_thread(medley, cancel=cancel, chunk_s=12.0, max_containers=2)
    wait_for(lambda: sum(isinstance(e, SegmentsReady) for e in events) >= 2 and len(cp.calls) >= 4, what="two answers")
    cancel.cancel()
    started = time.monotonic()
    assert isinstance(finish(thread, outcome, 60).get("error"), Cancelled), outcome
    assert time.monotonic() - started < 10
    finished = {call_id for call_id, call in cp.calls.items() if call.output is not None and call_id not in cp.cancelled_calls}
    assert len(finished) == 2
    assert set(cp.cancelled_calls) == set(cp.calls) - finished


def test_ctrl_c_in_the_cli_cancels_every_call_on_modal_and_exits_130_quietly(cp, medley):
    """Defect 9: Ctrl-C exited at once, the spawned chunks ran on (billed), and the closed loop printed
    "Task was destroyed but it is pending!" and "Event loop is closed"."""
    cp.slow(None, 60.0)  # every call is still running at the Ctrl-C
    app = cli("transcribe", str(medley), "--backend", "modal", "--chunk-seconds", "12", "--max-containers", "3")
    try:
        wait_for(lambda: len(cp.calls) >= 3, 180, "three calls sent")
        time.sleep(0.5)
        app.send_signal(signal.SIGINT)
        started = time.monotonic()
        stdout, stderr = app.communicate(timeout=60)
    finally:
        if app.poll() is None:
            app.kill()
    assert app.returncode == 130, stderr
    assert time.monotonic() - started < 20
    assert not any(noise in stderr for noise in NOISE), stderr
    assert cp.wait_idle(30)
    assert len(cp.calls) >= 3 and set(cp.calls) <= set(cp.cancelled_calls)  # every call sent was cancelled
    assert cp.executions == []  # none of them ran on a GPU


MAIN_THREAD_JOB = """
import sys
from worker.modal.fanout import ModalBackend
from worker.core.cancel import CancelToken
from worker.core.options import TranscriptionOptions
try:
    ModalBackend(chunk_s=12.0, max_containers=3).transcribe(sys.argv[1], TranscriptionOptions(language="en"),
                                                            lambda event: None, CancelToken())
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def test_ctrl_c_while_a_job_runs_in_the_main_thread_cancels_its_calls_first(cp, medley):
    """The backend's side of defect 9: a caller that runs the job in its main thread (a script) gets
    KeyboardInterrupt only after every call was cancelled, with the loop closed cleanly."""
    cp.slow(None, 60.0)
    app = subprocess.Popen([sys.executable, "-c", MAIN_THREAD_JOB, str(medley)], cwd=ROOT, env=dict(os.environ),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: len(cp.calls) >= 3, 180, "three calls sent")
        time.sleep(0.5)
        app.send_signal(signal.SIGINT)
        stdout, stderr = app.communicate(timeout=60)
    finally:
        if app.poll() is None:
            app.kill()
    assert app.returncode == 130 and stdout.strip() == "interrupted", (stdout, stderr)
    assert not any(noise in stderr for noise in NOISE), stderr
    assert cp.wait_idle(30)
    assert set(cp.calls) <= set(cp.cancelled_calls) and cp.executions == []


# ---------------------------------------------------------------- detached jobs: kill -9, start again


QUEUE_RUN = """
import sys, threading
from worker.library.library import Library
from worker.jobs.preferences import Preferences
from worker.jobs.events import JobFinished, JobProgress
from worker.jobs.queue import JobQueue

library = Library(sys.argv[1])
finished = threading.Event()

def listen(event):
    if isinstance(event, JobProgress):
        print("progress:", event.label, flush=True)
    elif isinstance(event, JobFinished):
        print("finished:", event.status.value, event.error or "", flush=True)
        finished.set()

queue = JobQueue(library, Preferences(backend="modal", language="en", chunk_s=12.0, max_containers=2), listen)
queue.restore()
if len(sys.argv) > 2:
    queue.add_files([sys.argv[2]])
queue.start()
finished.wait(360)
queue.shutdown(requeue=False)
library.close()
"""


@pytest.mark.parametrize("expired", [False, True], ids=["kept", "answers-expired"])
def test_a_job_killed_half_way_collects_its_calls_when_started_again_and_nothing_runs_twice(cp, medley, tmp_path, expired):
    """Issue 9, detached jobs: the calls a killed job sent are collected with FunctionCall.from_id when it runs
    again; only chunks never sent, or whose answers expired (Modal keeps them 7 days), are sent again."""
    library_path = tmp_path / "library.sqlite3"
    cp.slow(lambda record: record.ordinal >= 2, 8.0)  # two chunks answer at once, the next ones take a while
    first = subprocess.Popen([sys.executable, "-c", QUEUE_RUN, str(library_path), str(medley)], cwd=ROOT,
                             env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: sum(call.done.is_set() for call in list(cp.calls.values())) >= 2 and len(cp.calls) >= 4,
                 240, "two answers and four calls")
        time.sleep(0.5)  # the answers reach the job
    finally:
        first.kill()  # kill -9: no cleanup at all
        first.communicate(timeout=30)
    sent_before, maps_before = len(cp.calls), cp.count("FunctionMap")
    library = Library(library_path)
    [job] = library.jobs.all()
    ledger = library.chunk_ledger(job.id).entries()
    assert len(ledger) == sent_before  # every call the killed job sent is written down
    assert sum(entry.finished for entry in ledger) >= 2
    library.close()

    cp.faults = Faults()
    gone = [call_id for call_id, call in cp.calls.items() if call.done.is_set()] if expired else []
    cp.expire(gone)
    try:
        again = subprocess.run([sys.executable, "-c", QUEUE_RUN, str(library_path)], cwd=ROOT, env=dict(os.environ),
                               capture_output=True, text=True, timeout=400)
    except subprocess.TimeoutExpired as late:
        raise AssertionError(f"the restarted job did not end: {late.stdout!r} {late.stderr!r}") from None
    assert "finished: done" in again.stdout, (again.stdout, again.stderr)
    assert f"collecting {sent_before} chunks already sent to Modal" in again.stdout
    assert cp.wait_idle(60)
    chunks = len(cp.calls)  # every call: the first run's and the second's
    assert chunks - len(gone) >= 5
    assert runs_per_chunk(cp) == [1] * (chunks - 2 * len(gone)) + [2] * len(gone)  # once, or twice if expired
    assert cp.count("FunctionMap") - maps_before == chunks - sent_before  # only chunks never sent, or expired, went out
    assert cp.count("FunctionCallCancel") == 0

    library = Library(library_path)
    text = normalise(library.transcripts.get(job.id).text)
    assert text.count(JFK_PHRASE) == 3 and MIT_PHRASE in text
    assert library.chunk_ledger(job.id).entries() == []  # done: nothing left to collect
    library.close()


# ---------------------------------------------------------------- the window


def test_cancel_from_the_window_stops_every_call_sent_and_not_finished(cp, medley, qtbot, tmp_path):
    from gui.main_window import MainWindow
    from worker.jobs.preferences import Preferences

    cp.slow(lambda record: record.ordinal >= 2, 60.0)  # two chunks answer, the rest run on
    library = Library(tmp_path / "library.sqlite3")
    # two calls in flight until one answers: the first two inputs are chunks 1 and 2, in whatever order they arrive
    preferences = Preferences(backend="modal", language="en", chunk_s=12.0, max_containers=2, check_modal_on_start=False)
    window = MainWindow(library=library, preferences=preferences, modal_ready=lambda: True)
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.controller.pathsAdded, timeout=20000) as added:
        window.add_paths([medley])
    [job] = added.args[0]
    window.select_jobs([job.id])
    qtbot.waitUntil(lambda: len(cp.calls) >= 4, timeout=180000)
    qtbot.waitUntil(lambda: JFK_PHRASE in normalise(window.transcript_text()), timeout=180000)  # chunk 1 is shown
    window.cancel_selected()
    qtbot.waitUntil(lambda: library.jobs.get(job.id).status == "cancelled", timeout=30000)
    assert cp.wait_idle(30)
    answered = {call_id for call_id, call in cp.calls.items() if call.output is not None
                and call.output.result.status == 1}  # GENERIC_STATUS_SUCCESS
    assert len(answered) == 2
    assert set(cp.calls) - answered <= set(cp.cancelled_calls)  # every call sent and not finished was cancelled
    assert len(cp.executions) == 2  # none of them ran
    window.shutdown()


def test_a_modal_job_in_the_window_on_a_real_display(cp, medley, tmp_path):
    """`whisper-desk medley.flac` with Modal chosen, on Xvfb: the row's progress and the first chunks' text
    while the rest still run, then the whole transcript and a timing line per chunk; read back with OCR."""
    from test_xvfb_app import screen_text, start_xvfb

    from worker.jobs.preferences import Preferences
    from worker.library.database import default_library_path

    # two calls in flight until one answers: the first two inputs are chunks 1 and 2, in whatever order they arrive
    Preferences(backend="modal", language="en", chunk_s=12.0, max_containers=2).save()
    cp.slow(lambda record: record.ordinal >= 2, 90.0)  # two chunks answer at once, the rest take a while
    server, display = start_xvfb()
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}  # the real xcb platform
    env["DISPLAY"] = display
    app = subprocess.Popen([str(Path(sys.executable).parent / "whisper-desk"), str(medley)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: sum(call.done.is_set() for call in list(cp.calls.values())) >= 2 and len(cp.calls) >= 3,
                 240, "two answers")
        during = ""
        for attempt in range(15):  # the window shows answers once the client polls them in (slow under load)
            time.sleep(1.5)
            during = screen_text(env, tmp_path / f"during-{attempt}.png")
            if "fellow americans" in during and "chunk 2/6 gpu=" in during:
                break
        assert not any(call.done.is_set() for call in cp.calls.values() if call.record.ordinal >= 2)  # still running
        assert "medley.flac" in during and "running" in during, during
        assert "of 6" in during, during  # the row's progress: "transcribing chunk 2 of 6 — 36%"
        assert "fellow americans" in during, during  # chunk 1's text, while the later chunks still run
        assert "chunk 1/6 gpu=" in during and "chunk 2/6 gpu=" in during, during  # their timing lines
        assert "chunk 6/6" not in during, during
        cp.release_slow()  # seen while they ran: the rest may answer now

        library_path = default_library_path()
        status = None
        deadline = time.monotonic() + 300
        while status != "done" and time.monotonic() < deadline:
            assert app.poll() is None
            library = Library(library_path)
            status = library.jobs.all()[0].status
            lines = library.log.lines()
            library.close()
            assert status != "failed", lines
            time.sleep(0.5)
        assert status == "done"
        chunk_lines = [line for line in lines if "medley.flac: chunk " in line and "gpu=" in line]
        assert len(chunk_lines) == len(cp.calls), lines  # a timing line per chunk, each chunk once
        after = ""
        for attempt in range(15):
            time.sleep(1.5)
            after = screen_text(env, tmp_path / f"after-{attempt}.png")
            if "hereby granted" in after and "gpu=" in after:
                break
        for phrase in ("fellow americans", "permission is hereby granted", "chunk 6/6 gpu=", "done"):
            assert phrase in after, (phrase, after)
        assert runs_per_chunk(cp) == [1] * len(cp.calls)
    finally:
        app.terminate()
        try:
            app.wait(30)
        except subprocess.TimeoutExpired:
            app.kill()
        server.terminate()
        server.wait(10)

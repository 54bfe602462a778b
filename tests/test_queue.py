"""The job queue's rules with a stand-in backend and no Qt: scheduling, pause, retry, cancel, remove, reorder,
shutdown and recovery, progress and ETA, partial transcripts, the cost summary, leases. Each test waits on the
queue's events (never on the clock); the stand-in backend finishes a file only when the test says so."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import pytest

from worker.backends.events import Progress, SegmentsReady, Stage, TimingReport
from worker.core.errors import Cancelled, MediaError
from worker.jobs.preferences import Preferences
from worker.jobs.events import (
    DurationKnown,
    FailureLine,
    JobAdded,
    JobChanged,
    JobFinished,
    JobProgress,
    JobRemoved,
    JobStarted,
    LogLine,
    ModalSetupNeeded,
    Note,
    PathsAdded,
    PausedChanged,
    QueueEvent,
    RegionTranscribed,
    SegmentsArrived,
    SummaryLine,
    TimingLine,
    TranscriptEdited,
    VoiceSaved,
)
from worker.jobs.queue import MODAL_NOT_SET_UP, JobQueue, describe_failure
from worker.library.job_status import JobStatus
from worker.library.library import Library
from worker.transcripts.model import Segment, Transcript

WAIT_S = 30.0


class Recorder:
    """The queue's listener: keeps every event and lets a test wait for one."""

    def __init__(self) -> None:
        self.events: list[QueueEvent] = []
        self._changed = threading.Condition()

    def __call__(self, event: QueueEvent) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[list[QueueEvent]], bool], what: str = "") -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: predicate(self.events), WAIT_S), f"timed out waiting for {what}"

    def of(self, kind: type) -> list:
        with self._changed:
            return [event for event in self.events if isinstance(event, kind)]

    def finished(self, job_id: int) -> JobFinished | None:
        return next((e for e in self.of(JobFinished) if e.job_id == job_id), None)

    def wait_finished(self, *job_ids: int) -> None:
        self.wait_for(lambda events: all(any(isinstance(e, JobFinished) and e.job_id == i for e in events)
                                         for i in job_ids), f"jobs {job_ids} to finish")

    def wait_started(self, *job_ids: int) -> None:
        self.wait_for(lambda events: all(any(isinstance(e, JobStarted) and e.job_id == i for e in events)
                                         for i in job_ids), f"jobs {job_ids} to start")

    def started_ids(self) -> list[int]:
        return [event.job_id for event in self.of(JobStarted)]


class StandInBackend:
    """Transcribes nothing: each file ends when the test releases it (or at once for files named bad*)."""

    def __init__(self, name: str = "local") -> None:
        self.name = name
        self.gates: dict[str, threading.Event] = {}
        self.script: Callable[[Path, Callable], None] | None = None  # events to emit before waiting
        self.calls: list[str] = []
        self.ledgers: list[object] = []
        self.closed = 0
        self._lock = threading.Lock()

    def gate(self, path: Path | str) -> threading.Event:
        with self._lock:
            return self.gates.setdefault(Path(path).name, threading.Event())

    def release(self, path: Path | str) -> None:
        self.gate(path).set()

    def transcribe(self, path, options, emit, cancel, ledger=None):
        with self._lock:
            self.calls.append(Path(path).name)
            self.ledgers.append(ledger)
        if Path(path).name.startswith("bad"):
            raise MediaError(path, "not an audio or video file, or the file is damaged")
        emit(Progress(Stage.DECODING))
        if self.script is not None:
            self.script(Path(path), emit)
        gate = self.gate(path)
        cancel.on_cancel(gate.set)
        gate.wait()
        cancel.raise_if_cancelled()
        segment = Segment(id=0, start=0.0, end=2.0, text=f"words of {Path(path).stem}")
        emit(SegmentsReady([segment]))
        return Transcript(segments=[segment], language="en", duration=2.0, model=options.model, backend=self.name,
                          timings={"gpu": "cpu", "audio_s": 2.0, "inference_s": 0.5, "model_load_s": 0.1, "rtf": 0.25})

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def media(tmp_path: Path) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        path = tmp_path / "media" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(f"stand-in for {name}".encode())  # each its own recording (the same one would be reused)
        return path

    return make


@pytest.fixture
def backend() -> StandInBackend:
    return StandInBackend()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_queue(library: Library, backend: StandInBackend, recorder: Recorder):
    queues: list[JobQueue] = []

    def make(preferences: Preferences | None = None, lib: Library | None = None, modal_ready: bool = True,
             listener=None) -> JobQueue:
        q = JobQueue(lib or library, preferences or Preferences(), listener or recorder,
                     backend_factory=lambda name, prefs: backend, modal_ready=lambda: modal_ready, probe_delay_s=0.0)
        queues.append(q)
        return q

    yield make
    for gate in list(backend.gates.values()):
        gate.set()
    for q in queues:
        q.shutdown(timeout_s=10)


def test_this_computer_runs_one_file_at_a_time_in_queue_order(make_queue, backend, recorder, media, library):
    queue = make_queue()
    first, second, third = queue.add_files([media("a.wav"), media("b.wav"), media("c.wav")])
    recorder.wait_started(first.id)

    assert queue.running_ids() == [first.id]
    assert [library.jobs.get(i).status for i in (first.id, second.id, third.id)] == ["running", "queued", "queued"]
    backend.release("a.wav")
    recorder.wait_started(second.id)
    backend.release("b.wav")
    backend.release("c.wav")
    recorder.wait_finished(first.id, second.id, third.id)

    assert recorder.started_ids() == [first.id, second.id, third.id]
    assert all(library.jobs.get(i).status == JobStatus.DONE for i in (first.id, second.id, third.id))
    assert library.transcripts.get(second.id).text == "words of b"
    assert backend.calls == ["a.wav", "b.wav", "c.wav"]


def test_modal_runs_several_files_at_once(make_queue, backend, recorder, media, library):
    queue = make_queue(Preferences(backend="modal", modal_parallel=2))
    jobs = queue.add_files([media(f"{n}.wav") for n in "abc"])
    recorder.wait_started(jobs[0].id, jobs[1].id)

    assert sorted(queue.running_ids()) == [jobs[0].id, jobs[1].id]
    assert library.jobs.get(jobs[2].id).status == JobStatus.QUEUED
    backend.release("b.wav")
    recorder.wait_started(jobs[2].id)
    for name in ("a.wav", "c.wav"):
        backend.release(name)
    recorder.wait_finished(*(job.id for job in jobs))


def test_modal_without_credentials_fails_with_one_line_and_asks_for_setup(make_queue, recorder, media, library):
    queue = make_queue(Preferences(backend="modal"), modal_ready=False)
    [job] = queue.add_files([media("talk.wav")])

    recorder.wait_finished(job.id)
    assert library.jobs.get(job.id).status == JobStatus.FAILED
    assert library.jobs.get(job.id).error == MODAL_NOT_SET_UP
    assert recorder.of(ModalSetupNeeded) == [ModalSetupNeeded(MODAL_NOT_SET_UP)]
    assert recorder.finished(job.id) == JobFinished(job.id, JobStatus.FAILED, MODAL_NOT_SET_UP)


def test_pause_holds_queued_jobs_and_resume_starts_them(make_queue, backend, recorder, media, library):
    queue = make_queue()
    queue.set_paused(True)
    [job] = queue.add_files([media("a.wav")])

    assert library.jobs.get(job.id).status == JobStatus.QUEUED and queue.running_ids() == []
    queue.set_paused(False)
    recorder.wait_started(job.id)
    assert recorder.of(PausedChanged) == [PausedChanged(True), PausedChanged(False)]
    backend.release("a.wav")
    recorder.wait_finished(job.id)


def test_a_bad_file_fails_with_its_reason_and_the_others_finish_then_retry(make_queue, backend, recorder, media, library):
    queue = make_queue()
    bad, good = queue.add_files([media("bad.m4a"), media("good.wav")])
    backend.release("good.wav")
    recorder.wait_finished(bad.id, good.id)

    record = library.jobs.get(bad.id)
    assert record.status == JobStatus.FAILED
    assert record.error == "bad.m4a: not an audio or video file, or the file is damaged"
    assert library.jobs.get(good.id).status == JobStatus.DONE
    assert "bad.m4a: failed: bad.m4a: not an audio or video file, or the file is damaged" in library.log.lines(bad.id)

    recorder.events.clear()
    queue.retry([bad.id, good.id])
    recorder.wait_finished(bad.id, good.id)  # the stand-in's gate for good.wav is still open
    assert backend.calls == ["bad.m4a", "good.wav", "bad.m4a", "good.wav"]
    assert library.jobs.get(good.id).status == JobStatus.DONE and library.jobs.get(good.id).error is None


def test_cancel_a_running_and_a_queued_job(make_queue, backend, recorder, media, library):
    queue = make_queue()
    running, waiting, later = queue.add_files([media("a.wav"), media("b.wav"), media("c.wav")])
    recorder.wait_started(running.id)

    queue.cancel([waiting.id])
    assert library.jobs.get(waiting.id).status == JobStatus.CANCELLED  # at once: it never ran
    queue.cancel([running.id])
    recorder.wait_finished(running.id)
    assert library.jobs.get(running.id).status == JobStatus.CANCELLED
    recorder.wait_started(later.id)  # the next one starts
    assert "b.wav" not in backend.calls
    queue.retry([running.id])  # a cancelled job can run again
    backend.release("c.wav")
    backend.release("a.wav")
    recorder.wait_for(lambda events: sum(isinstance(e, JobFinished) and e.job_id == running.id for e in events) == 2)
    assert library.jobs.get(running.id).status == JobStatus.DONE


def test_remove_a_running_job_stops_it_first(make_queue, backend, recorder, media, library):
    queue = make_queue()
    running, waiting = queue.add_files([media("a.wav"), media("b.wav")])
    recorder.wait_started(running.id)

    queue.remove([running.id, waiting.id])
    recorder.wait_for(lambda events: {e.job_id for e in events if isinstance(e, JobRemoved)} == {running.id, waiting.id})
    assert library.jobs.all() == [] and queue.running_ids() == []
    assert recorder.finished(running.id) is None  # removed, not "cancelled"


def test_removing_a_job_removes_the_apps_own_copy_of_its_file_and_never_a_users_file(make_queue, backend, recorder,
                                                                                     media, library, tmp_path):
    upload = tmp_path / "uploads" / "3f2a" / "call.wav"  # the app's own copy, as the API server writes one
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"stand-in for an uploaded call")
    queue = make_queue()
    [copied] = queue.add_files([upload], owned_copy=True)
    [users] = queue.add_files([media("mine.wav")])
    assert library.jobs.get(copied.id).owned_copy and not library.jobs.get(users.id).owned_copy
    for name in ("call.wav", "mine.wav"):
        backend.release(name)
    recorder.wait_for(lambda events: {e.job_id for e in events if isinstance(e, JobFinished)} >= {copied.id, users.id})

    queue.remove([copied.id, users.id])
    recorder.wait_for(lambda events: {e.job_id for e in events if isinstance(e, JobRemoved)} == {copied.id, users.id})
    assert not upload.parent.exists() and (tmp_path / "uploads").is_dir()  # the copy and its folder, nothing above
    assert media("mine.wav").is_file() and (tmp_path / "media" / "mine.wav").read_bytes()


def test_move_reorders_and_the_new_order_runs(make_queue, backend, recorder, media, library):
    queue = make_queue()
    queue.set_paused(True)
    a, b, c = queue.add_files([media("a.wav"), media("b.wav"), media("c.wav")])
    queue.move([c.id], -1)
    queue.move([c.id], -1)
    queue.move([a.id], +1)
    assert [job.id for job in library.jobs.all()] == [c.id, b.id, a.id]
    queue.set_backend([b.id], "modal")
    assert library.jobs.get(b.id).backend == "modal"

    for name in ("a.wav", "b.wav", "c.wav"):
        backend.release(name)
    queue.set_paused(False)
    recorder.wait_finished(a.id, b.id, c.id)
    assert backend.calls[0] == "c.wav"


def test_shutdown_puts_running_jobs_back_and_the_next_start_resumes_them(make_queue, backend, recorder, media, library):
    queue = make_queue()
    running, waiting = queue.add_files([media("a.wav"), media("b.wav")])
    recorder.wait_started(running.id)

    assert queue.shutdown(timeout_s=10) is True
    assert [job.status for job in library.jobs.all()] == ["queued", "queued"]
    assert library.jobs.get(running.id).finished is None

    again = Recorder()
    second = make_queue(listener=again)
    assert [job.id for job in second.restore()] == [running.id, waiting.id]
    backend.release("a.wav")
    backend.release("b.wav")
    second.start()
    again.wait_finished(running.id, waiting.id)
    assert [job.status for job in library.jobs.all()] == ["done", "done"]


def test_shutdown_without_requeue_cancels(make_queue, backend, recorder, media, library):
    queue = make_queue()
    [job] = queue.add_files([media("a.wav")])
    recorder.wait_started(job.id)
    assert queue.shutdown(timeout_s=10, requeue=False) is True
    assert library.jobs.get(job.id).status == JobStatus.CANCELLED


def test_a_job_interrupted_by_a_crash_is_queued_again_at_start(make_queue, backend, recorder, media, library, tmp_path):
    [job] = library.jobs.add_many([media("a.wav")], Preferences().options(), "local")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that ran the job, then died without a word
    assert library.jobs.claim(job.id, f"{socket.gethostname()}:{gone.pid}:crashed")

    queue = make_queue()
    assert [record.status for record in queue.restore()] == ["queued"]
    assert Note("1 interrupted job(s) queued again") in recorder.of(Note)
    backend.release("a.wav")
    queue.start()
    recorder.wait_finished(job.id)
    assert library.jobs.get(job.id).status == JobStatus.DONE


def test_a_job_another_live_process_runs_is_never_taken(make_queue, backend, recorder, media, library, tmp_path):
    [theirs, ours] = library.jobs.add_many([media("theirs.wav"), media("ours.wav")], Preferences().options(), "local")
    other = Library(tmp_path / "library.sqlite3")  # the other process's connection
    try:
        assert other.jobs.claim(theirs.id, "elsewhere:1:abc")

        queue = make_queue()
        assert [record.status for record in queue.restore()] == ["running", "queued"]  # a live lease stays
        backend.release("ours.wav")
        queue.start()
        recorder.wait_finished(ours.id)
        assert backend.calls == ["ours.wav"]
        assert library.jobs.get(theirs.id).status == JobStatus.RUNNING
    finally:
        other.close()


def test_progress_only_moves_forward_is_throttled_and_has_an_eta(make_queue, backend, recorder, media, library):
    def burst(path: Path, emit) -> None:
        for step in range(1, 201):
            emit(Progress(Stage.TRANSCRIBING, fraction=step / 800, chunk_index=0, chunk_count=2))
        emit(Progress(Stage.TRANSCRIBING, fraction=0.6, chunk_index=1, chunk_count=2))
        emit(Progress(Stage.TRANSCRIBING, fraction=0.3, message="again"))  # a backend that goes back: the bar does not

    backend.script = burst
    queue = make_queue()
    [job] = queue.add_files([media("a.wav")])
    recorder.wait_for(lambda events: any(isinstance(e, JobProgress) and e.label == "again" for e in events))
    backend.release("a.wav")
    recorder.wait_finished(job.id)

    progress = [e for e in recorder.of(JobProgress) if e.job_id == job.id]
    fractions = [e.fraction for e in progress]
    assert fractions == sorted(fractions)
    assert len([e for e in progress if e.label == "transcribing chunk 1 of 2"]) < 100  # 200 steps coalesced
    [second_chunk] = [e for e in progress if e.label == "transcribing chunk 2 of 2"]
    assert second_chunk.fraction == 0.6 and second_chunk.eta_s is not None and second_chunk.eta_s >= 0
    assert [e.fraction for e in progress if e.label == "again"] == [0.6]
    assert progress[0].label == "decoding" and progress[0].eta_s is None


def test_partial_transcript_follows_segments_and_they_reach_the_library(make_queue, backend, recorder, media, library):
    def two_segments(path: Path, emit) -> None:
        emit(SegmentsReady([Segment(id=0, start=3.0, end=4.0, text="second")]))
        emit(SegmentsReady([Segment(id=0, start=1.0, end=2.0, text="first")]))

    backend.script = two_segments
    queue = make_queue()
    [job] = queue.add_files([media("a.wav")])
    recorder.wait_for(lambda events: len([e for e in events if isinstance(e, SegmentsArrived)]) == 2)

    assert [s.text for s in queue.partial_transcript(job.id).segments] == ["first", "second"]
    assert queue.partial_transcript(12345) is None
    backend.release("a.wav")
    recorder.wait_finished(job.id)
    assert library.transcripts.get(job.id).text == "words of a"


def test_the_cost_summary_sums_the_chunks_gpu_seconds(make_queue, backend, recorder, media, library):
    def chunks(path: Path, emit) -> None:
        for index in range(2):
            emit(TimingReport({"gpu": "Tesla T4", "cold_start": index == 0, "model_load_s": 1.0, "inference_s": 17.0,
                               "audio_s": 30.0, "rtf": 0.5, "chunk_count": 2}, chunk_index=index))

    backend.script = chunks
    queue = make_queue(Preferences(dollars_per_gpu_hour=0.36))
    [job] = queue.add_files([media("talk.wav")])
    backend.release("talk.wav")
    recorder.wait_finished(job.id)

    lines = library.log.lines(job.id)
    assert lines[0].startswith("talk.wav: chunk 1/2 gpu=Tesla T4 cold_start=yes")
    [summary] = [line for line in lines if "summary" in line]
    assert "GPU-s=36.00" in summary and "cost≈$0.0036" in summary and "audio=60.0s" in summary
    assert [e.text for e in recorder.of(LogLine)] == lines


def test_a_finished_job_is_exported_automatically(make_queue, backend, recorder, media, library, tmp_path):
    queue = make_queue(Preferences(auto_export_formats=("txt", "srt"), auto_export_folder=str(tmp_path / "out")))
    [job] = queue.add_files([media("a.wav")])
    backend.release("a.wav")
    recorder.wait_finished(job.id)

    assert (tmp_path / "out" / "a.txt").read_text(encoding="utf-8").strip() == "words of a"
    assert (tmp_path / "out" / "a.srt").is_file()
    assert f"a.wav: exported {tmp_path / 'out' / 'a.txt'}" in library.log.lines(job.id)


def test_folders_are_searched_in_the_background_and_durations_probed(make_queue, recorder, tmp_path, shared_audio):
    import shutil

    folder = tmp_path / "drop"
    (folder / "inner").mkdir(parents=True)
    shutil.copy(shared_audio / "jfk.flac", folder / "inner" / "speech.flac")
    (folder / "notes.txt").write_text("not audio")
    queue = make_queue()
    queue.set_paused(True)
    queue.add_paths([folder])
    recorder.wait_for(lambda events: any(isinstance(e, PathsAdded) for e in events), "the scan")

    [added] = recorder.of(PathsAdded)
    assert [Path(r.path).name for r in added.records] == ["speech.flac"]
    assert [e.record.id for e in recorder.of(JobAdded)] == [added.records[0].id]
    recorder.wait_for(lambda events: any(isinstance(e, DurationKnown) for e in events), "the probe")
    assert abs(recorder.of(DurationKnown)[0].seconds - 11.0) < 0.2
    assert abs(queue.library.jobs.get(added.records[0].id).duration - 11.0) < 0.2


def test_the_backend_gets_the_jobs_chunk_ledger(make_queue, backend, recorder, media, library):
    queue = make_queue()
    [job] = queue.add_files([media("a.wav")])
    backend.release("a.wav")
    recorder.wait_finished(job.id)
    assert len(backend.ledgers) == 1 and backend.ledgers[0] is not None


def test_job_changes_are_in_the_library_before_they_are_reported(make_queue, backend, media, library):
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def listener(event: QueueEvent) -> None:
        if isinstance(event, JobChanged):
            seen.append((event.record.status, library.jobs.get(event.record.id).status))
        elif isinstance(event, JobFinished):
            done.set()

    queue = make_queue(listener=listener)
    backend.release("a.wav")
    queue.add_files([media("a.wav")])
    assert done.wait(WAIT_S)
    assert ("running", "running") in seen and ("done", "done") in seen
    assert all(reported == stored for reported, stored in seen)


def test_failure_wording_is_one_line():
    assert describe_failure(MediaError("/x/a.wav", "file not found")).reason == "a.wav: file not found"
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError as exc:
        unexpected = describe_failure(exc)
    assert unexpected.reason == "unexpected error: RuntimeError: boom" and "Traceback" in unexpected.detail
    assert describe_failure(Cancelled()).reason == "cancelled"


def test_job_status_is_a_string():
    assert JobStatus.DONE == "done" and str(JobStatus.FAILED) == "failed"
    assert JobStatus("cancelled").finished and not JobStatus.RUNNING.finished
    assert replace(Preferences(), backend="modal").parallel("modal") == 3


def test_a_job_of_ours_another_process_took_is_followed_to_its_end(library, backend, recorder, media, tmp_path):
    queue = JobQueue(library, Preferences(), recorder, backend_factory=lambda name, prefs: backend,
                     probe_delay_s=0.0, heartbeat_s=0.05, only_own_jobs=True)  # the CLI's queue
    try:
        queue.set_paused(True)
        taken, ours = queue.add_files([media("taken.wav"), media("ours.wav")])
        other = Library(tmp_path / "library.sqlite3")  # the window of another process, on the same library
        try:
            assert other.jobs.claim(taken.id, "elsewhere:1:abc")
            backend.release("ours.wav")
            queue.set_paused(False)
            recorder.wait_finished(ours.id)
            assert recorder.finished(taken.id) is None and backend.calls == ["ours.wav"]

            other.transcripts.save(taken.id, Transcript(segments=[Segment(0, 0.0, 1.0, "theirs")], source=taken.path))
            other.jobs.mark_ended(taken.id, JobStatus.DONE, time.time())
            recorder.wait_finished(taken.id)
        finally:
            other.close()
        assert recorder.finished(taken.id) == JobFinished(taken.id, JobStatus.DONE, None)
        assert library.transcripts.get(taken.id).text == "theirs" and backend.calls == ["ours.wav"]
    finally:
        queue.shutdown(timeout_s=10)


def test_an_only_own_jobs_queue_never_runs_other_jobs_of_the_library(library, backend, recorder, media):
    [windows] = library.jobs.add_many([media("windows.wav")], Preferences().options(), "local")
    queue = JobQueue(library, Preferences(), recorder, backend_factory=lambda name, prefs: backend,
                     probe_delay_s=0.0, only_own_jobs=True)
    try:
        [mine] = queue.add_files([media("mine.wav")])
        backend.release("mine.wav")
        recorder.wait_finished(mine.id)
        assert backend.calls == ["mine.wav"] and library.jobs.get(windows.id).status == JobStatus.QUEUED
    finally:
        queue.shutdown(timeout_s=10)


def test_the_window_runs_the_library_it_restored_not_jobs_another_process_queues_later(
        make_queue, backend, recorder, media, library, tmp_path):
    [left] = library.jobs.add_many([media("left.wav")], Preferences().options(), "local")  # from the last session
    queue = make_queue()
    queue.set_paused(True)
    queue.restore()
    cli = Library(tmp_path / "library.sqlite3")  # a CLI run on the same library, after the window started
    try:
        [theirs] = cli.jobs.add_many([media("theirs.wav")], Preferences().options(), "local")
    finally:
        cli.close()
    backend.release("left.wav")
    queue.set_paused(False)
    recorder.wait_finished(left.id)
    queue.schedule()
    assert backend.calls == ["left.wav"] and library.jobs.get(theirs.id).status == JobStatus.QUEUED


# --- reports carry the change, outside the lock, in order ---------------------------------------------------

def test_the_listener_runs_outside_the_lock_and_may_call_back_from_another_thread(make_queue, backend, recorder, media,
                                                                                  library):
    queue_box: list[JobQueue] = []
    helper_done: list[bool] = []

    def listener(event: QueueEvent) -> None:
        recorder(event)
        if isinstance(event, JobStarted) and not helper_done:
            queue = queue_box[0]
            # another thread changes the queue while this listener runs and waits for it: under the queue's
            # lock that thread could never get in
            helper = threading.Thread(target=lambda: queue.cancel([waiting.id]))
            helper.start()
            helper.join(WAIT_S)
            helper_done.append(not helper.is_alive())

    queue = make_queue(listener=listener)
    queue_box.append(queue)
    queue.set_paused(True)
    running, waiting = queue.add_files([media("a.wav"), media("b.wav")])
    queue.set_paused(False)
    recorder.wait_finished(waiting.id)

    assert helper_done == [True]
    assert recorder.finished(waiting.id) == JobFinished(waiting.id, JobStatus.CANCELLED)
    # the helper's reports came after the report whose listener it ran in, in the order they happened
    started = recorder.events.index(next(e for e in recorder.of(JobStarted) if e.job_id == running.id))
    cancelled = recorder.events.index(recorder.finished(waiting.id))
    assert started < cancelled
    backend.release("a.wav")
    recorder.wait_finished(running.id)


def test_reports_from_parallel_jobs_arrive_one_at_a_time_in_each_jobs_order_with_their_payloads(
        make_queue, backend, media, library):
    inside = threading.Lock()
    overlapped: list[QueueEvent] = []
    recorder = Recorder()

    def listener(event: QueueEvent) -> None:
        if not inside.acquire(blocking=False):
            overlapped.append(event)  # two threads in the listener at once
            return
        try:
            recorder(event)
        finally:
            inside.release()

    def chatty(path: Path, emit) -> None:
        for n in range(20):
            emit(SegmentsReady([Segment(id=n, start=float(n), end=n + 0.5, text=f"{path.stem} {n}")]))
            emit(Progress(Stage.TRANSCRIBING, fraction=(n + 1) / 40))

    backend.script = chatty
    queue = make_queue(Preferences(backend="modal", modal_parallel=3), listener=listener)
    jobs = queue.add_files([media(f"{name}.wav") for name in "abc"])
    for name in "abc":
        backend.release(f"{name}.wav")
    recorder.wait_finished(*(job.id for job in jobs))

    assert overlapped == []
    for job in jobs:
        mine = [e for e in recorder.events if not isinstance(e, (DurationKnown, JobProgress))
                and (getattr(e, "job_id", None) == job.id or getattr(getattr(e, "record", None), "id", None) == job.id)]
        kinds = [type(e).__name__ for e in mine]
        assert kinds[:3] == ["JobAdded", "JobChanged", "JobStarted"]
        assert kinds[-4:] == ["TimingLine", "SummaryLine", "JobChanged", "JobFinished"]
        segments = [s.text for e in mine if isinstance(e, SegmentsArrived) for s in e.segments]
        stem = Path(job.path).stem
        assert segments == [f"{stem} {n}" for n in range(20)] + [f"words of {stem}"]
        ending = mine[-1]
        assert ending.status == JobStatus.DONE and ending.error is None
        assert ending.record.status == JobStatus.DONE and ending.record.elapsed is not None
        assert ending.transcript.text == library.transcripts.get(job.id).text == f"words of {stem}"
        assert mine[-2].record.status == JobStatus.DONE  # the state JobChanged reported just before


def test_a_failure_and_the_timings_come_as_typed_reports(make_queue, backend, recorder, media, library):
    def chunks(path: Path, emit) -> None:
        for index in range(2):
            emit(TimingReport({"gpu": "Tesla T4", "cold_start": index == 0, "model_load_s": 1.0, "inference_s": 17.0,
                               "audio_s": 30.0, "rtf": 0.5, "chunk_count": 2}, chunk_index=index))

    backend.script = chunks
    queue = make_queue()
    bad, good = queue.add_files([media("bad.wav"), media("talk.wav")])
    backend.release("talk.wav")
    recorder.wait_finished(bad.id, good.id)

    [failure] = recorder.of(FailureLine)
    reason = "bad.wav: not an audio or video file, or the file is damaged"
    assert failure.reason == reason and failure.job_id == bad.id and failure.text == f"bad.wav: failed: {reason}"
    ending = recorder.finished(bad.id)
    assert ending.error == reason and ending.record.status == JobStatus.FAILED and ending.record.error == reason
    assert ending.transcript is None

    timings = [e for e in recorder.of(TimingLine) if e.job_id == good.id]
    assert [(e.chunk_index, e.chunk_count, e.timings["gpu"]) for e in timings] == [(0, 2, "Tesla T4"), (1, 2, "Tesla T4")]
    assert timings[0].text.startswith("talk.wav: chunk 1/2 gpu=Tesla T4 cold_start=yes")
    [summary] = [e for e in recorder.of(SummaryLine) if e.job_id == good.id]
    assert (summary.model, summary.backend) == ("tiny.en", "local") and "GPU-s=36.00" in summary.summary
    assert summary.text == f"talk.wav: {summary.summary}"
    assert [e.text for e in recorder.of(LogLine) if e.job_id == good.id] == library.log.lines(good.id)


def test_writes_from_outside_a_job_are_written_then_reported(make_queue, recorder, library, jfk, tmp_path):
    from worker.jobs.review_import import fit_to_audio, read_subtitles

    queue = make_queue()
    subtitles = tmp_path / "jfk.srt"
    subtitles.write_text("1\n00:00:00,000 --> 00:00:03,000\nAnd so my fellow Americans\n\n"
                         "2\n00:00:03,500 --> 00:00:08,000\nask not what your country can do for you\n", encoding="utf-8")
    transcript, _audio = read_subtitles(subtitles, guess_audio=False)
    transcript = fit_to_audio(transcript, subtitles, jfk, 11.0)

    record = queue.add_review_job(transcript, jfk, subtitles)
    added = recorder.of(JobAdded)
    assert [e.record.id for e in added] == [record.id] and added[0].record.status == JobStatus.DONE
    assert recorder.of(LogLine)[-1] == LogLine(record.id, "imported jfk.srt (2 cues) for review")
    assert library.jobs.get(record.id).status == JobStatus.DONE and library.log.lines(record.id)[-1].endswith("for review")

    edited = library.transcripts.get(record.id)
    edited.segments[0].text = "And so, my fellow Americans,"
    queue.save_edit(record.id, edited)
    [edit] = recorder.of(TranscriptEdited)
    assert edit.job_id == record.id and edit.edited and edit.transcript.segments[0].text == "And so, my fellow Americans,"
    assert library.transcripts.is_edited(record.id) and library.transcripts.get(record.id).segments[0].text == "And so, my fellow Americans,"

    queue.save_edit(record.id, library.transcripts.original(record.id), edited=False)
    assert not recorder.of(TranscriptEdited)[-1].edited and not library.transcripts.is_edited(record.id)

    voice_id = queue.save_voice("Kennedy", [0.6, 0.8, 0.0])
    assert recorder.of(VoiceSaved) == [VoiceSaved(voice_id, "Kennedy")]
    assert [voice.name for voice in library.voices.all()] == ["Kennedy"]


def test_a_region_is_transcribed_on_the_pools_backend_with_the_preferences_held_in_memory(library, recorder, media, jfk):
    made: list[tuple[str, Preferences]] = []
    backend = StandInBackend()

    def factory(name: str, preferences: Preferences) -> StandInBackend:
        made.append((name, preferences))
        return backend

    queue = JobQueue(library, Preferences(), recorder, backend_factory=factory, probe_delay_s=0.0)
    try:
        in_memory = replace(Preferences(), local_threads=3, model="base.en")  # never saved to disk
        queue.set_preferences(in_memory)
        backend.release("jfk 3.000-5.000.wav")  # the range is handed over as a clip of its own
        segments = queue.transcribe_region(jfk, 3.0, 5.0, replace(in_memory.options(), model="tiny.en"), job_id=7)

        assert made == [("local", in_memory)]  # the pool made it, from the preferences the queue holds
        assert backend.calls == ["jfk 3.000-5.000.wav"]
        assert [(s.start, s.end, s.text) for s in segments] == [(3.0, 5.0, segments[0].text)]
        [region] = recorder.of(RegionTranscribed)
        assert (region.job_id, region.start_s, region.end_s, region.segments) == (7, 3.0, 5.0, segments)

        [job] = queue.add_files([media("a.wav")])
        backend.release("a.wav")
        recorder.wait_finished(job.id)
        assert made == [("local", in_memory)]  # the job ran on the same backend: the pool's one
    finally:
        queue.shutdown(timeout_s=10)

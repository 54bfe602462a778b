"""The same recording is never transcribed twice by accident (issue 19, part 3): a file whose bytes, model and
options match a finished job takes that job's transcript, whatever its name or path, on every way in (the
window's drop, `whisper-desk transcribe`, a watch folder, `whisper-desk serve`), and "transcribe again" really
transcribes it. Adding a watch folder that already holds files asks whether to transcribe them. Jobs another
process adds show in an open window.

Real recordings (../shared/audio), the shipped tiny.en and a real library throughout; the engine is the real
LocalBackend, wrapped only to count the files it is asked to transcribe. The stand-in backend of test_queue
appears only in the unit tests of the queue's rules (edited transcripts, options that differ, waiting twins)."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from speech_text import JFK_PHRASE, normalise
from test_cli import run_cli
from test_queue import Recorder, StandInBackend
from test_serve import serving
from test_watch import Clock, WatchProcess

from worker.core.options import TranscriptionOptions
from worker.jobs.events import JobFinished, TranscriptReused
from worker.jobs.preferences import Preferences
from worker.jobs.queue import JobQueue
from worker.library.job_status import JobStatus
from worker.jobs.watch import FolderWatcher, WatchState, survey_folder
from worker.jobs.watch_folders import ExistingFiles, WatchFolder
from worker.library.library import Library

WAIT_S = 240.0
REUSED = "its transcript was reused"


class CountingBackend:
    """The module's real LocalBackend (tiny.en), counting the files it is asked to transcribe."""

    name = "local"

    def __init__(self, backend) -> None:
        self.backend = backend
        self.calls: list[str] = []

    def transcribe(self, path, options, emit, cancel, ledger=None):
        self.calls.append(Path(path).name)
        return self.backend.transcribe(path, options, emit, cancel, ledger=ledger)

    def close(self) -> None:
        pass


@pytest.fixture(autouse=True)
def no_watch_process_outlives_its_test():
    yield
    while WatchProcess.started:
        process = WatchProcess.started.pop()
        if process.poll() is None:  # the test failed before it stopped the watch: so do its engine and all
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def counting(local_backend) -> CountingBackend:
    return CountingBackend(local_backend)


def copy_as(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def reuse_lines(library: Library, job_id: int) -> list[str]:
    return [line for line in library.log.lines(job_id) if REUSED in line]


# --- the queue, with the real engine ---------------------------------------------------------------------------

@pytest.fixture
def queue_with(library):
    queues: list[JobQueue] = []

    def make(backend, recorder: Recorder, preferences: Preferences | None = None) -> JobQueue:
        queue = JobQueue(library, preferences or Preferences(), recorder, backend_factory=lambda name, prefs: backend,
                         modal_ready=lambda: True, probe_delay_s=0.0)
        queues.append(queue)
        return queue

    yield make
    for queue in queues:
        queue.shutdown(timeout_s=30)


def test_a_copy_under_another_name_takes_the_transcript_and_transcribe_again_runs_it(queue_with, counting, library,
                                                                                    jfk, tmp_path):
    recorder = Recorder()
    queue = queue_with(counting, recorder)
    [first] = queue.add_files([jfk])
    recorder.wait_finished(first.id)
    copy = copy_as(jfk, tmp_path / "elsewhere" / "speech of 1961.flac")
    [second] = queue.add_files([copy])
    recorder.wait_finished(second.id)

    assert counting.calls == ["jfk.flac"]  # the copy never reached the engine
    ending = recorder.finished(second.id)
    assert ending.status == JobStatus.DONE and ending.record.status == JobStatus.DONE
    assert ending.transcript.text == library.transcripts.get(first.id).text
    assert JFK_PHRASE in normalise(ending.transcript.text)
    assert ending.transcript.source == str(copy.resolve())  # the copy's own file, for playing and exporting
    assert library.transcripts.get(second.id).text == ending.transcript.text  # saved as the copy's own
    [line] = recorder.of(TranscriptReused)
    assert line.text == f"speech of 1961.flac: same recording as jfk.flac (job {first.id}): {REUSED}"
    assert (line.job_id, line.earlier_job_id, line.earlier_path) == (second.id, first.id, str(jfk.resolve()))
    assert library.log.lines(second.id) == [line.text]  # no timing or cost line: nothing ran, nothing billed
    assert second.id not in recorder.started_ids()
    assert library.jobs.get(second.id).content_sha256 == library.jobs.get(first.id).content_sha256

    queue.retry([second.id])  # the window's "Transcribe again"
    recorder.wait_for(lambda events: sum(isinstance(e, JobFinished) and e.job_id == second.id for e in events) == 2,
                      "the copy transcribed again")
    assert counting.calls == ["jfk.flac", "speech of 1961.flac"]
    assert second.id in recorder.started_ids()
    assert any("summary wall=" in line for line in library.log.lines(second.id))
    assert len(recorder.of(TranscriptReused)) == 1
    assert JFK_PHRASE in normalise(library.transcripts.get(second.id).text)


def test_two_copies_dropped_at_once_run_once(queue_with, counting, library, jfk, tmp_path):
    recorder = Recorder()
    queue = queue_with(counting, recorder, Preferences(local_parallel=2))  # room for both at once: still one run
    first, second = queue.add_files([copy_as(jfk, tmp_path / "a.flac"), copy_as(jfk, tmp_path / "b.flac")])
    recorder.wait_finished(first.id, second.id)
    assert counting.calls == ["a.flac"]
    assert reuse_lines(library, second.id) == [f"b.flac: same recording as a.flac (job {first.id}): {REUSED}"]
    assert library.transcripts.get(second.id).text == library.transcripts.get(first.id).text


# --- the queue's rules, with the stand-in backend --------------------------------------------------------------

def test_other_options_or_other_bytes_are_transcribed_and_an_edit_is_what_a_copy_takes(library, tmp_path):
    backend = StandInBackend()
    recorder = Recorder()
    queue = JobQueue(library, Preferences(), recorder, backend_factory=lambda name, prefs: backend,
                     modal_ready=lambda: True, probe_delay_s=0.0)
    try:
        talk = tmp_path / "talk.wav"
        talk.write_bytes(b"one recording")
        for name in ("talk.wav", "talk words.wav", "other.wav"):
            backend.release(name)
        [first] = queue.add_files([talk])
        recorder.wait_finished(first.id)
        edited = library.transcripts.get(first.id)
        edited.segments[0].text = "words as the user corrected them"
        queue.save_edit(first.id, edited)

        words = copy_as(talk, tmp_path / "talk words.wav")  # the same bytes, with word timestamps asked for
        [with_words] = queue.add_files([words], options=TranscriptionOptions(word_timestamps=True))
        other = tmp_path / "other.wav"
        other.write_bytes(b"another recording")
        [different] = queue.add_files([other])
        [plain_copy] = queue.add_files([copy_as(talk, tmp_path / "copy.wav")])
        recorder.wait_finished(with_words.id, different.id, plain_copy.id)

        assert backend.calls == ["talk.wav", "talk words.wav", "other.wav"]
        assert library.transcripts.get(plain_copy.id).text == "words as the user corrected them"
        assert library.transcripts.original(plain_copy.id).text == "words of talk"  # the engine's, to revert to
        assert library.transcripts.is_edited(plain_copy.id)
    finally:
        queue.shutdown()


def test_a_copy_waits_for_its_twin_and_a_failed_twin_lets_it_run(library, tmp_path):
    backend = StandInBackend()
    recorder = Recorder()
    queue = JobQueue(library, Preferences(backend="modal", modal_parallel=3), recorder,
                     backend_factory=lambda name, prefs: backend, modal_ready=lambda: True, probe_delay_s=0.0)
    try:
        bad = tmp_path / "bad.wav"
        bad.write_bytes(b"not audio at all")
        good = tmp_path / "good.wav"
        good.write_bytes(b"a recording")
        [failing, twin_of_bad] = queue.add_files([bad, copy_as(bad, tmp_path / "bad again.wav")])
        [running, twin] = queue.add_files([good, copy_as(good, tmp_path / "good again.wav")])
        recorder.wait_started(running.id)
        recorder.wait_finished(failing.id, twin_of_bad.id)
        assert library.jobs.get(twin.id).status == JobStatus.QUEUED  # waits for its twin, slots free or not
        backend.release("good.wav")
        recorder.wait_finished(running.id, twin.id)
        assert sorted(backend.calls) == ["bad again.wav", "bad.wav", "good.wav"]  # a failure is no transcript
        assert recorder.finished(twin.id).status == JobStatus.DONE and reuse_lines(library, twin.id)
    finally:
        backend.release("good again.wav")
        queue.shutdown()


def test_a_file_that_cannot_be_read_runs_and_says_why(queue_with, counting, library, tmp_path):
    recorder = Recorder()
    queue = queue_with(counting, recorder)
    [gone] = queue.add_files([tmp_path / "gone.wav"])
    recorder.wait_finished(gone.id)
    assert counting.calls == ["gone.wav"]  # its content could not be read: it ran, and the engine said why
    ending = recorder.finished(gone.id)
    assert (ending.status, ending.error) == (JobStatus.FAILED, "gone.wav: file not found")
    assert library.jobs.get(gone.id).content_sha256 is None


def test_a_window_queue_lists_and_follows_another_processs_job_and_leaves_it_to_that_process(library, tmp_path):
    """Two processes on one library file: the window's queue (under_window) reports the job the other one adds,
    its start and its end with the transcript; cancel and remove from the window leave it to its process."""
    from worker.jobs.events import JobAdded, JobChanged, Note

    backend = StandInBackend()
    window_events, other_events = Recorder(), Recorder()
    window_queue = JobQueue(library, Preferences(), window_events, backend_factory=lambda name, prefs: backend,
                            modal_ready=lambda: True, under_window=True, library_check_s=0.05)
    other_library = Library(library.path)  # the other process's connection
    other_queue = JobQueue(other_library, Preferences(), other_events, backend_factory=lambda name, prefs: backend,
                           modal_ready=lambda: True, only_own_jobs=True)
    try:
        window_queue.restore()
        other_queue.set_paused(True)
        talk = tmp_path / "served.wav"
        talk.write_bytes(b"a request's upload")
        [theirs] = other_queue.add_files([talk])
        window_events.wait_for(lambda events: any(isinstance(e, JobAdded) and e.record.id == theirs.id for e in events),
                               "the window to list the other process's job")
        window_queue.cancel([theirs.id])
        window_queue.remove([theirs.id])
        assert [note.text for note in window_events.of(Note)] == [
            "served.wav: another process's job (whisper-desk serve, transcribe or watch), which waits for it: "
            "cancel it there; it can be removed here once it has ended"] * 2
        assert library.jobs.get(theirs.id).status == JobStatus.QUEUED

        backend.release("served.wav")
        other_queue.set_paused(False)
        window_events.wait_finished(theirs.id)
        ending = window_events.finished(theirs.id)
        assert ending.status == JobStatus.DONE and ending.transcript.text == "words of served"
        statuses = [e.record.status for e in window_events.of(JobChanged) if e.record.id == theirs.id]
        assert statuses[-1] == JobStatus.DONE
        assert backend.calls == ["served.wav"] and theirs.id not in window_queue.running_ids()
        assert [e.record.id for e in window_events.of(JobAdded)] == [theirs.id]  # once
    finally:
        other_queue.shutdown()
        other_library.close()
        window_queue.shutdown()


# --- whisper-desk transcribe ---------------------------------------------------------------------------------

def test_cli_a_copy_prints_the_reuse_line_and_writes_the_same_outputs_and_again_transcribes(jfk, tmp_path):
    library_path = tmp_path / "library.sqlite3"
    first, copied, again = tmp_path / "first", tmp_path / "copied", tmp_path / "again"
    copy = copy_as(jfk, tmp_path / "inbox" / "kennedy.flac")

    ran = run_cli("transcribe", str(jfk), "--library", str(library_path), "--format", "txt,srt", "--output-dir", str(first))
    assert ran.returncode == 0, ran.stderr
    reused = run_cli("transcribe", str(copy), "--library", str(library_path), "--format", "txt,srt",
                     "--output-dir", str(copied))
    assert reused.returncode == 0, reused.stderr
    assert [line for line in reused.stderr.splitlines() if REUSED in line] == [
        f"kennedy.flac: same recording as jfk.flac (job 1): {REUSED}"]
    assert "summary" not in reused.stderr and "transcribing" not in reused.stderr  # nothing ran
    for fmt in ("txt", "srt"):
        assert (copied / f"kennedy.{fmt}").read_bytes() == (first / f"jfk.{fmt}").read_bytes()

    transcribed = run_cli("transcribe", str(copy), "--again", "--library", str(library_path), "--format", "txt",
                          "--output-dir", str(again))
    assert transcribed.returncode == 0, transcribed.stderr
    assert REUSED not in transcribed.stderr
    assert "kennedy.flac: transcribing" in transcribed.stderr and "summary wall=" in transcribed.stderr
    assert JFK_PHRASE in normalise((again / "kennedy.txt").read_text(encoding="utf-8"))
    help_text = run_cli("transcribe", "--help").stdout
    assert "--again" in help_text and "reused" in help_text

    library = Library(library_path)
    try:
        jobs = library.jobs.all()
        assert [(job.name, job.status, job.transcribe_again) for job in jobs] == [
            ("jfk.flac", "done", False), ("kennedy.flac", "done", False), ("kennedy.flac", "done", True)]
        assert any("summary wall=" in line for line in library.log.lines(jobs[2].id))
    finally:
        library.close()


def test_two_processes_started_at_once_on_copies_of_one_recording_transcribe_it_once(jfk, tmp_path):
    """Two `whisper-desk transcribe` runs on one library, started at the same moment with copies of one recording
    under two names: one transcribes, the other waits for it (the library refuses its claim while the twin runs)
    and takes the transcript; both write the same text."""
    import subprocess
    import sys

    from test_cli import ROOT

    library_path = tmp_path / "library.sqlite3"
    Library(library_path).close()  # made once, not by two processes racing to create it
    copies = [copy_as(jfk, tmp_path / "in" / name) for name in ("monday.flac", "tuesday.flac")]
    runs = [subprocess.Popen([sys.executable, "-m", "worker.cli", "transcribe", str(copy), "--library", str(library_path),
                              "--format", "txt", "--output-dir", str(tmp_path / "out")], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for copy in copies]
    ended = [run.communicate(timeout=WAIT_S) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], ended
    errors = "".join(err for _out, err in ended)
    assert errors.count("summary wall=") == 1, errors  # one engine run
    assert len([line for line in errors.splitlines() if REUSED in line]) == 1, errors
    texts = [(tmp_path / "out" / f"{copy.stem}.txt").read_text(encoding="utf-8") for copy in copies]
    assert texts[0] == texts[1] and JFK_PHRASE in normalise(texts[0])


# --- watch folders ---------------------------------------------------------------------------------------------

def test_a_watch_folder_takes_the_transcript_of_a_recording_transcribed_before(queue_with, counting, library, jfk,
                                                                               tmp_path):
    recorder = Recorder()
    queue = queue_with(counting, recorder)
    [dropped] = queue.add_files([jfk], options=TranscriptionOptions(model="tiny.en"))  # what the folder asks for
    recorder.wait_finished(dropped.id)
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    clock = Clock()
    lines: list[str] = []
    watcher = FolderWatcher(library, queue, [WatchFolder(str(inbox), formats=("txt",), output_dir=str(out))],
                            lines.append, settle_s=2.0, clock=clock)
    copy_as(jfk, inbox / "recorded again.flac")
    watcher.poll()
    clock.advance(2.1)
    watcher.poll()  # settled: queued
    [job] = [record for record in library.jobs.all() if record.id != dropped.id]
    recorder.wait_finished(job.id)
    watcher.poll()  # the round after it ended writes the outputs

    assert counting.calls == ["jfk.flac"]
    assert reuse_lines(library, job.id) == [f"recorded again.flac: same recording as jfk.flac (job {dropped.id}): {REUSED}"]
    text = (out / "recorded again.txt").read_text(encoding="utf-8")
    assert normalise(text) == normalise(library.transcripts.get(dropped.id).text)
    assert {Path(row.path).name: row.state for row in library.watched_files.all()} == {"recorded again.flac": "done"}


def test_a_folder_added_with_its_files_to_skip_skips_them_once_per_addition(library, tmp_path):
    backend = StandInBackend()
    recorder = Recorder()
    queue = JobQueue(library, Preferences(), recorder, backend_factory=lambda name, prefs: backend,
                     modal_ready=lambda: True, probe_delay_s=0.0)
    queue.set_paused(True)  # only queued here
    inbox = tmp_path / "inbox"
    for name in ("one.wav", "two.wav", "three.wav"):
        (inbox / name).parent.mkdir(exist_ok=True)
        (inbox / name).write_bytes(name.encode())
    clock = Clock()
    lines: list[str] = []
    added = WatchFolder(str(inbox), existing=ExistingFiles.SKIP, added=1000.0)

    def settle(watcher: FolderWatcher) -> None:
        watcher.poll()
        clock.advance(2.1)
        watcher.poll()

    def queued() -> list[str]:
        return sorted(job.name for job in library.jobs.all())

    try:
        watcher = FolderWatcher(library, queue, [added], lines.append, settle_s=2.0, clock=clock)
        settle(watcher)
        assert queued() == []
        assert lines == ["inbox: 3 media files already there, skipped: only files that arrive from now on are transcribed"]
        assert {row.state for row in library.watched_files.all()} == {WatchState.SKIPPED}
        (inbox / "new.wav").write_bytes(b"new")
        settle(watcher)
        assert queued() == ["new.wav"]

        (inbox / "while closed.wav").write_bytes(b"while closed")  # arrived while nothing watched
        restarted = FolderWatcher(library, queue, [added], lines.append, settle_s=2.0, clock=clock)
        settle(restarted)
        assert queued() == ["new.wav", "while closed.wav"]  # the same addition: nothing skipped again

        (inbox / "before adding again.wav").write_bytes(b"before adding again")
        readded = FolderWatcher(library, queue, [replace(added, added=2000.0)], lines.append, settle_s=2.0, clock=clock)
        settle(readded)
        assert queued() == ["new.wav", "while closed.wav"]  # removed and added again: its files then are skipped
        assert lines[-1].startswith("inbox: 1 media file already there, skipped")
        assert backend.calls == []
    finally:
        queue.shutdown()


def test_a_folders_survey_counts_its_files_and_estimates_modal_from_their_length(shared_audio, tmp_path):
    from worker.media.audio import probe_duration
    from worker.modal.cost import estimate_modal_cost

    folder = tmp_path / "calls"
    names = ("jfk.flac", "hotwords.mp3", "multilingual.mp3")
    for name in names:
        copy_as(shared_audio / name, folder / "day 1" / name)
    (folder / "notes.txt").write_text("not audio")
    preferences = Preferences(dollars_per_gpu_hour=0.59, chunk_s=30.0, max_containers=4)

    here = survey_folder(folder, "local", "tiny.en", preferences)
    assert (here.files, here.usd) == (3, None) and here.line() == "3 media files"
    on_modal = survey_folder(folder, "modal", "base.en", preferences)
    lengths = [probe_duration(shared_audio / name) for name in names]
    estimates = [estimate_modal_cost(seconds, "base.en", dollars_per_hour=0.59, chunk_s=30.0, max_containers=4)
                 for seconds in lengths]
    assert on_modal.files == 3 and on_modal.seconds == pytest.approx(sum(lengths))
    assert on_modal.usd == pytest.approx((sum(e.usd_low for e in estimates), sum(e.usd_high for e in estimates)))
    assert on_modal.usd[0] > 0
    assert f"on Modal about ${on_modal.usd[0]:.4f}–${on_modal.usd[1]:.4f}" in on_modal.line()


def test_cli_watch_skips_the_files_already_there_and_transcribes_a_new_one(jfk, tmp_path):
    inbox, out, library_path = tmp_path / "inbox", tmp_path / "out", tmp_path / "watch.sqlite3"
    for name in ("old 1.flac", "old 2.flac"):
        copy_as(jfk, inbox / name)
    watch = WatchProcess(inbox, out, "--existing", "skip", "--library", str(library_path))
    watch.wait_line(lambda l: l.startswith("inbox: 2 media files already there, skipped"), "the skip line")
    copy_as(jfk, inbox / "new.flac")
    watch.wait_line(lambda l: l.startswith("new.flac: wrote") and l.endswith("new.txt"), "the new file's outputs")
    assert watch.interrupt() == 130
    assert JFK_PHRASE in normalise((out / "new.txt").read_text(encoding="utf-8"))
    library = Library(library_path)
    try:
        assert [job.name for job in library.jobs.all()] == ["new.flac"]
        assert {Path(row.path).name: row.state for row in library.watched_files.all()} == {
            "old 1.flac": "skipped", "old 2.flac": "skipped", "new.flac": "done"}
    finally:
        library.close()
    assert "--existing" in run_cli("watch", "--help").stdout


# --- whisper-desk serve -------------------------------------------------------------------------------------------

def test_serve_answers_a_duplicate_from_the_first_transcript(jfk, tmp_path):
    with serving(tmp_path / "home") as served:
        client = served.client()
        first = client.audio.transcriptions.create(model="whisper-1", file=("first.flac", jfk.read_bytes()))
        second = client.audio.transcriptions.create(model="whisper-1", file=("second.flac", jfk.read_bytes()))
        assert JFK_PHRASE in normalise(first.text) and second.text == first.text
        [one], [two] = served.job_named("first.flac"), served.job_named("second.flac")
    log = (tmp_path / "home" / "serve.log").read_text()
    assert "first.flac: transcribing" in log and "second.flac: transcribing" not in log  # one run of the engine
    assert f"second.flac: same recording as first.flac (job {one.id}): {REUSED}" in log
    assert (one.status, two.status) == (JobStatus.DONE, JobStatus.DONE)


# --- the window ------------------------------------------------------------------------------------------------

@pytest.fixture
def window(qtbot, library, counting):
    from gui.main_window import MainWindow
    from gui.settings import Preferences as WindowPreferences

    win = MainWindow(library=library, preferences=WindowPreferences(check_modal_on_start=False),
                     backend_factory=lambda name, prefs: counting)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.shutdown()


def wait_done(qtbot, library: Library, job_id: int) -> None:
    qtbot.waitUntil(lambda: library.jobs.get(job_id).status == JobStatus.DONE, timeout=int(WAIT_S * 1000))


def test_the_same_file_dropped_twice_runs_once_and_transcribe_again_runs_it(qtbot, window, library, counting, jfk,
                                                                            tmp_path):
    from test_gui_queue import drop_on

    finished: list[JobFinished] = []
    window.controller.jobFinished.connect(finished.append)
    drop_on(window.table.viewport(), [jfk])
    qtbot.waitUntil(lambda: len(finished) == 1, timeout=int(WAIT_S * 1000))
    copy = copy_as(jfk, tmp_path / "downloads" / "jfk (1).flac")
    drop_on(window.table.viewport(), [copy])
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=int(WAIT_S * 1000))
    first, second = (ending.job_id for ending in finished)

    assert counting.calls == ["jfk.flac"]
    assert finished[1].status == JobStatus.DONE
    line = f"jfk (1).flac: same recording as jfk.flac (job {first}): {REUSED}"
    assert line in window.log_panel.lines()
    assert window.statusBar().currentMessage().startswith(line)
    assert window.transcript_pane.job_id == second  # nothing selected: the pane shows the job that finished
    assert normalise(window.transcript_text()) == normalise(library.transcripts.get(first).text)
    assert JFK_PHRASE in normalise(window.transcript_text())

    window.select_jobs([second])
    assert window.transcribe_again_action.isEnabled()
    window.transcribe_again_action.trigger()
    qtbot.waitUntil(lambda: len(finished) == 3, timeout=int(WAIT_S * 1000))
    assert counting.calls == ["jfk.flac", "jfk (1).flac"]
    assert finished[2].job_id == second and finished[2].status == JobStatus.DONE
    assert any(l.startswith("jfk (1).flac: ") and "summary wall=" in l for l in window.log_panel.lines())


def test_adding_a_watch_folder_with_files_asks_and_skip_queues_none_but_a_new_file(qtbot, window, library, counting,
                                                                                   shared_audio, monkeypatch,
                                                                                   tmp_path):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog, QMessageBox, QPushButton

    from gui.settings import SettingsDialog
    from worker.jobs.watch import SETTLE_S

    inbox = tmp_path / "recordings"
    for name in ("jfk.flac", "hotwords.mp3", "stereo_diarization.wav"):
        copy_as(shared_audio / name, inbox / name)
    (inbox / "notes.txt").write_text("not audio")
    window.set_paused(True)  # the new file is queued; nothing needs to run
    dialog = SettingsDialog(window.preferences, window)
    qtbot.addWidget(dialog)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *args, **kwargs: str(inbox))
    qtbot.mouseClick(dialog.findChild(QPushButton, "addWatchFolder"), Qt.MouseButton.LeftButton)

    editor = dialog.watch_folders
    qtbot.waitUntil(lambda: editor.question is not None and editor.question.isVisible(), timeout=10000)
    question = editor.question
    assert f"{inbox} already holds 3 media files" in question.text()
    assert editor.table.rowCount() == 0  # nothing added before the answer
    [skip] = [button for button in question.buttons() if button.text() == "Only new files"]
    assert [b.text() for b in question.buttons() if question.buttonRole(b) == QMessageBox.ButtonRole.AcceptRole] == [
        "Transcribe 3 files"]
    skip.click()
    [entry] = dialog.preferences().watch_folders
    assert (entry.folder, entry.existing) == (str(inbox), ExistingFiles.SKIP) and entry.added > 0
    dialog.accept()
    window.apply_preferences(dialog.preferences())

    qtbot.waitUntil(lambda: any("3 media files already there, skipped" in line for line in window.log_panel.lines()),
                    timeout=10000)
    copy_as(shared_audio / "multilingual.mp3", inbox / "new call.mp3")
    qtbot.waitUntil(lambda: [job.name for job in library.jobs.all()] == ["new call.mp3"],
                    timeout=int((SETTLE_S * 4 + 10) * 1000))
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5000)
    qtbot.wait(2500)  # a few rounds more (one a second): the files already there stay skipped
    assert [job.name for job in library.jobs.all()] == ["new call.mp3"]
    assert {Path(row.path).name: row.state for row in library.watched_files.all()} == {
        "jfk.flac": "skipped", "hotwords.mp3": "skipped", "stereo_diarization.wav": "skipped",
        "new call.mp3": "queued"}
    assert counting.calls == []


def test_a_job_another_process_adds_appears_in_the_window_and_ends_there(qtbot, window, library, counting, jfk):
    added: list[int] = []
    window.controller.jobAdded.connect(lambda record: added.append(record.id))
    result: list = []  # `whisper-desk transcribe` on the window's library, in a process of its own
    ran = threading.Thread(target=lambda: result.append(run_cli("transcribe", str(jfk), "--library", str(library.path))))
    ran.start()
    qtbot.waitUntil(lambda: bool(added), timeout=int(WAIT_S * 1000))
    [job_id] = added
    assert window.model.row_of(job_id) is not None
    ran.join(WAIT_S)
    assert result and result[0].returncode == 0, result
    qtbot.waitUntil(lambda: window.model.job_row(job_id).status == JobStatus.DONE, timeout=20000)
    assert counting.calls == []  # the window never ran another process's job
    window.select_jobs([job_id])
    assert JFK_PHRASE in normalise(window.transcript_text())
    assert window.totals_label.text() == "1 done"

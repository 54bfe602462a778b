"""Watch folders: files are queued once they stop changing, transcribed once (across restarts too), their
outputs written atomically; partial downloads, temporary and non-media files are ignored in one line each.

The unit tests drive FolderWatcher round by round with a stand-in clock and backend; the acceptance tests run
the real `whisper-desk watch` with tiny.en on a file copied slowly into the folder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import pysubs2
import pytest

from worker.core.options import TranscriptionOptions
from worker.jobs.preferences import Preferences
from worker.jobs.events import JobFinished, QueueEvent
from worker.jobs.queue import JobQueue
from worker.jobs.watch import FolderWatcher, SettleTracker, WatchState, ignore_reason
from worker.jobs.watch_folders import WatchFolder, parse_watch_folders
from worker.library.library import Library
from worker.transcripts.model import Segment, Transcript

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 60.0
SETTLE_S = 2.0


# --- what is watched ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, reason", [
    ("talk.flac", None),
    ("Interview.MP4", None),
    ("talk.flac.part", "partial download"),
    ("video.mp4.crdownload", "partial download"),
    ("talk.flac.tmp", "temporary file"),
    ("talk.flac~", "temporary file"),
    ("~talk.flac", "temporary file"),
    (".talk.flac", "hidden file"),
    ("notes.txt", "not a media file"),
    ("README", "not a media file"),
])
def test_what_is_ignored_and_why(name, reason):
    found = ignore_reason(Path("/watched") / name)
    assert (found is None) if reason is None else (reason in found)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_a_file_is_ready_once_size_and_time_stop_changing():
    clock = Clock()
    tracker = SettleTracker(settle_s=3.0, clock=clock)
    path = Path("/watched/talk.flac")
    assert not tracker.observe(path, 100, 1.0)  # first sight
    clock.advance(2.0)
    assert not tracker.observe(path, 200, 2.0)  # still growing: the wait starts again
    clock.advance(2.9)
    assert not tracker.observe(path, 200, 2.0)
    clock.advance(0.2)
    assert tracker.observe(path, 200, 2.0)  # 3.1 s unchanged
    clock.advance(1.0)
    assert not tracker.observe(path, 200, 5.0)  # touched again: wait again
    empty = Path("/watched/empty.flac")
    tracker.observe(empty, 0, 1.0)
    clock.advance(60)
    assert not tracker.observe(empty, 0, 1.0)  # an empty file is never ready (a download that has not begun)


def test_watch_folder_settings_round_trip_and_damaged_entries_fall_back():
    entry = WatchFolder("/rec", "modal", "base.en", ("srt", "txt"), "/out")
    assert WatchFolder.from_dict(entry.to_dict()) == entry
    damaged = WatchFolder.from_dict({"folder": "/rec", "backend": "gpu-farm", "model": "huge", "formats": ["doc"]})
    assert damaged == WatchFolder("/rec")
    assert parse_watch_folders([entry.to_dict(), {"folder": ""}, "junk", {"backend": "local"}]) == (entry,)
    assert parse_watch_folders("junk") == ()
    assert WatchFolder("/rec", formats=()).problem() == "choose at least one output format"


def test_preferences_keep_watch_folders():
    entry = WatchFolder("/rec", "local", "tiny.en", ("srt",), "/out")
    prefs = Preferences(watch_folders=(entry,))
    assert Preferences.from_dict(prefs.to_dict()).watch_folders == (entry,)
    assert Preferences.from_dict({"watch_folders": "junk"}).watch_folders == ()


# --- the watcher, round by round, with a stand-in backend --------------------------------------------------

class InstantBackend:
    """Transcribes nothing: every file says "words of <stem>"; files named bad* fail as bad media."""

    name = "local"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def transcribe(self, path, options, emit, cancel, ledger=None):
        from worker.core.errors import MediaError

        self.calls.append(Path(path).name)
        if Path(path).name.startswith("bad"):
            raise MediaError(path, "not an audio or video file, or the file is damaged")
        return Transcript(segments=[Segment(0, 0.0, 2.0, f"words of {Path(path).stem}")], language="en",
                          duration=2.0, model=options.model, backend="local")

    def close(self) -> None:
        pass


class Rig:
    """A library, a queue with the stand-in backend, and a watcher on one folder, with a stand-in clock."""

    def __init__(self, tmp_path: Path, backend: InstantBackend, output_dir: Path | None = None,
                 preferences: Preferences | None = None) -> None:
        self.folder = tmp_path / "inbox"
        self.preferences = preferences or Preferences()
        self.folder.mkdir(exist_ok=True)
        self.output_dir = output_dir
        self.backend = backend
        self.library_path = tmp_path / "library.sqlite3"
        self.lines: list[str] = []
        self.finished = threading.Condition()
        self.finished_ids: list[int] = []
        self.clock = Clock()
        self.start()

    def start(self) -> None:
        self.library = Library(self.library_path)
        self.queue = JobQueue(self.library, self.preferences, self._on_event,
                              backend_factory=lambda name, prefs: self.backend, modal_ready=lambda: True)
        self.queue.restore()
        entry = WatchFolder(str(self.folder), formats=("txt", "srt"), output_dir=str(self.output_dir or ""))
        self.watcher = FolderWatcher(self.library, self.queue, [entry], self.lines.append, SETTLE_S,
                                     clock=self.clock)
        self.queue.start()

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        self.queue.shutdown()
        self.library.close()

    def _on_event(self, event: QueueEvent) -> None:
        if isinstance(event, JobFinished):
            with self.finished:
                self.finished_ids.append(event.job_id)
                self.finished.notify_all()

    def wait_finished(self, count: int) -> None:
        with self.finished:
            assert self.finished.wait_for(lambda: len(self.finished_ids) >= count, WAIT_S)

    def settle(self) -> None:
        """Two rounds SETTLE_S apart: whatever stopped changing is queued."""
        self.watcher.poll()
        self.clock.advance(SETTLE_S + 0.1)
        self.watcher.poll()

    def states(self) -> dict[str, str]:
        return {Path(row.path).name: row.state for row in self.library.watched_files.all()}


@pytest.fixture
def rig(tmp_path):
    rigs: list[Rig] = []

    def make(**kwargs) -> Rig:
        rigs.append(Rig(tmp_path, InstantBackend(), **kwargs))
        return rigs[-1]

    yield make
    for made in rigs:
        made.stop()


def _media(folder: Path, name: str, data: bytes | None = None) -> Path:
    """A stand-in media file; each name its own recording unless `data` says otherwise (the same bytes are one
    recording, transcribed once)."""
    path = folder / name
    path.write_bytes(data if data is not None else f"RIFF fake audio bytes of {name}".encode())
    return path


def test_new_file_is_queued_after_it_settles_and_its_outputs_are_written(rig, tmp_path):
    out = tmp_path / "out"
    r = rig(output_dir=out)
    _media(r.folder, "talk.flac")
    r.watcher.poll()
    assert r.backend.calls == [] and r.library.jobs.all() == []  # seen once: not yet known to be complete
    r.clock.advance(SETTLE_S + 0.1)
    r.watcher.poll()
    r.wait_finished(1)
    r.watcher.poll()  # the round after the job ended writes the outputs
    assert (out / "talk.txt").read_text(encoding="utf-8").strip() == "words of talk"
    assert "words of talk" in (out / "talk.srt").read_text(encoding="utf-8")
    assert r.states() == {"talk.flac": WatchState.DONE}
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind
    for _ in range(3):
        r.clock.advance(SETTLE_S + 0.1)
        r.watcher.poll()
    assert r.backend.calls == ["talk.flac"]
    assert sorted(p.name for p in out.iterdir()) == ["talk.srt", "talk.txt"]


def test_a_watched_files_outputs_are_the_folders_only_not_the_automatic_exports_too(rig, tmp_path):
    out = tmp_path / "out"
    r = rig(output_dir=out, preferences=Preferences(auto_export_formats=("txt",), auto_export_folder=str(out)))
    _media(r.folder, "talk.flac")
    r.settle()
    r.wait_finished(1)
    r.watcher.poll()
    assert sorted(p.name for p in out.iterdir()) == ["talk.srt", "talk.txt"]  # no "talk (2).txt"
    assert not [line for line in r.library.log.lines(r.library.jobs.all()[0].id) if "exported" in line]
    dropped = _media(tmp_path, "dropped.flac")  # a file added by hand: the automatic export writes it
    r.queue.add_files([dropped])
    r.wait_finished(2)
    assert sorted(p.name for p in out.iterdir()) == ["dropped.txt", "talk.srt", "talk.txt"]


def test_a_growing_file_waits_until_it_stops(rig):
    r = rig()
    path = _media(r.folder, "growing.wav", b"x" * 10)
    for size in range(20, 120, 10):  # a slow copy: a new piece before each round
        r.watcher.poll()
        r.clock.advance(SETTLE_S / 2)
        with open(path, "ab") as handle:
            handle.write(b"x" * 10)
        os.utime(path, (time.time(), time.time() + size))  # a new time too, as a copy gives
    r.watcher.poll()
    assert r.library.jobs.all() == []
    r.clock.advance(SETTLE_S + 0.1)
    r.watcher.poll()
    [job] = r.library.jobs.all()
    assert Path(job.path).stat().st_size == 110


def test_transcribed_once_across_restarts_and_again_only_when_the_file_changes(rig):
    r = rig()
    path = _media(r.folder, "talk.flac")
    r.settle()
    r.wait_finished(1)
    r.watcher.poll()
    r.restart()
    r.settle()
    r.settle()
    assert r.lines.count("inbox: 1 media file seen before, 0 new") == 1  # said at the restart's first round
    assert r.backend.calls == ["talk.flac"]
    assert len(r.library.jobs.all()) == 1

    path.write_bytes(b"RIFF a new recording under the same name")
    r.settle()
    r.wait_finished(2)  # (the count goes on across restarts)
    r.watcher.poll()
    assert r.backend.calls == ["talk.flac", "talk.flac"]
    assert any("changed since it was transcribed" in line for line in r.lines)
    assert (r.folder / "talk (2).txt").exists()  # the first transcript's outputs are never overwritten


def test_a_file_that_arrived_while_nothing_watched_is_transcribed_at_the_next_start(rig):
    r = rig()
    r.stop()
    _media(r.folder, "while-closed.m4a")
    r.start()
    r.settle()
    r.wait_finished(1)
    r.watcher.poll()
    assert (r.folder / "while-closed.txt").exists()


def test_stopped_before_the_job_ran_it_runs_at_the_next_start(rig):
    r = rig()
    r.queue.set_paused(True)
    _media(r.folder, "talk.flac")
    r.settle()
    assert r.states() == {"talk.flac": WatchState.QUEUED}
    r.restart()  # the queued job is in the library: the new queue runs it, the watcher writes its outputs
    r.wait_finished(1)
    r.watcher.poll()
    assert r.states() == {"talk.flac": WatchState.DONE}
    assert (r.folder / "talk.txt").exists()
    assert r.backend.calls == ["talk.flac"]


def test_partial_downloads_temporary_and_other_files_are_ignored_in_one_line_each(rig):
    r = rig()
    _media(r.folder, "talk.flac.part")
    _media(r.folder, "video.mp4.crdownload")
    _media(r.folder, "draft.wav.tmp")
    _media(r.folder, ".hidden.flac")
    (r.folder / "notes.txt").write_text("not audio")
    for _ in range(3):
        r.settle()
    assert r.library.jobs.all() == [] and r.backend.calls == []
    assert sorted(r.lines) == [
        "draft.wav.tmp: ignored: a temporary file",
        "inbox: 0 media files seen before, 0 new",
        "notes.txt: ignored: not a media file",
        "talk.flac.part: ignored: a partial download (waiting for the finished file)",
        "video.mp4.crdownload: ignored: a partial download (waiting for the finished file)",
    ]
    (r.folder / "talk.flac.part").rename(r.folder / "talk.flac")  # the download finished
    r.settle()
    assert [Path(job.path).name for job in r.library.jobs.all()] == ["talk.flac"]


def test_many_ignored_files_at_once_are_one_line_and_a_missing_folder_is_said_once(rig):
    r = rig()
    for n in range(20):
        (r.folder / f"document {n:02d}.pdf").write_text("not audio")
    r.settle()
    assert r.lines == ["inbox: ignored 20 files that are not media or not finished (document 00.pdf, "
                       "document 01.pdf, document 02.pdf, document 03.pdf, document 04.pdf, …)",
                       "inbox: 0 media files seen before, 0 new"]
    shutil.rmtree(r.folder)  # unplugged
    for _ in range(3):
        r.watcher.poll()
    assert r.lines[2:] == ["inbox: cannot be read now (moved, or a drive that is not mounted?)"]


def test_bad_media_fails_in_one_line_and_is_not_tried_again(rig):
    r = rig()
    _media(r.folder, "bad.mp3")
    _media(r.folder, "good.mp3")
    r.settle()
    r.wait_finished(2)
    r.watcher.poll()
    assert r.states() == {"bad.mp3": WatchState.FAILED, "good.mp3": WatchState.DONE}
    assert [line for line in r.lines if line.startswith("bad.mp3: failed")] == [
        "bad.mp3: failed: bad.mp3: not an audio or video file, or the file is damaged"]
    r.settle()
    assert sorted(r.backend.calls) == ["bad.mp3", "good.mp3"]


def test_a_file_already_in_the_queue_is_not_transcribed_twice(rig):
    r = rig()
    r.queue.set_paused(True)
    path = _media(r.folder, "dropped.flac")
    r.queue.add_files([path])  # the user dropped it in the window too
    r.settle()
    assert len(r.library.jobs.all()) == 1
    r.queue.set_paused(False)
    r.wait_finished(1)
    r.watcher.poll()
    assert r.backend.calls == ["dropped.flac"] and (r.folder / "dropped.txt").exists()


def test_two_watchers_on_one_library_queue_a_file_once(rig, tmp_path):
    """The window and `whisper-desk watch` on the same folder and library: one job, whoever sees it first."""
    r = rig()
    r.queue.set_paused(True)
    other_library = Library(r.library_path)  # another process's connection
    other_queue = JobQueue(other_library, Preferences(), backend_factory=lambda name, prefs: r.backend,
                           modal_ready=lambda: True)
    other_queue.set_paused(True)
    other = FolderWatcher(other_library, other_queue, [WatchFolder(str(r.folder))], r.lines.append, SETTLE_S,
                          clock=r.clock)
    try:
        _media(r.folder, "talk.flac")
        r.watcher.poll()
        other.poll()
        r.clock.advance(SETTLE_S + 0.1)
        other.poll()
        r.watcher.poll()
        assert len(r.library.jobs.all()) == 1
        assert r.lines.count("talk.flac: queued (local, tiny.en)") == 1
    finally:
        other_queue.shutdown()
        other_library.close()


def test_a_claim_left_by_a_watcher_that_stopped_is_taken_again(rig, monkeypatch):
    import worker.jobs.watch as watch
    import worker.jobs.watch_folders as watch_folders

    r = rig()
    path = _media(r.folder, "talk.flac")
    stat = path.stat()
    r.library.watched_files.claim(path.resolve(), stat.st_size, stat.st_mtime, WatchState.CLAIMED, 60)
    r.settle()
    assert r.library.jobs.all() == []  # another watcher is about to queue it
    for module in (watch, watch_folders):  # the watcher's claim and its reading of claims
        monkeypatch.setattr(module, "CLAIM_STALE_S", -1.0)  # ... but it never did
    r.settle()
    r.wait_finished(1)
    r.watcher.poll()
    assert r.states() == {"talk.flac": WatchState.DONE} and r.backend.calls == ["talk.flac"]


def test_a_file_that_changes_before_its_job_starts_is_not_queued_twice(rig):
    r = rig()
    r.queue.set_paused(True)
    path = _media(r.folder, "talk.flac")
    r.settle()
    with open(path, "ab") as handle:
        handle.write(b" and a little more")
    r.settle()
    assert len(r.library.jobs.all()) == 1
    r.queue.set_paused(False)
    r.wait_finished(1)
    r.watcher.poll()
    assert r.backend.calls == ["talk.flac"] and r.states() == {"talk.flac": WatchState.DONE}


def test_a_queue_of_its_own_jobs_runs_an_adopted_one(library, tmp_path):
    """The watch CLI's queue runs only its own jobs, plus the folder's files queued before a restart."""
    backend = InstantBackend()
    finished = threading.Event()
    queue = JobQueue(library, Preferences(), lambda e: finished.set() if isinstance(e, JobFinished) else None,
                     backend_factory=lambda name, prefs: backend, modal_ready=lambda: True, only_own_jobs=True)
    try:
        [theirs, earlier] = library.jobs.add_many([_media(tmp_path, "theirs.flac"), _media(tmp_path, "earlier.flac")],
                                             TranscriptionOptions(), "local")
        queue.start()
        queue.adopt([earlier.id])
        assert finished.wait(WAIT_S)
        assert backend.calls == ["earlier.flac"] and library.jobs.get(theirs.id).status == "queued"
    finally:
        queue.shutdown()


def test_a_folder_that_does_not_exist_is_reported_not_fatal(tmp_path):
    library = Library(tmp_path / "library.sqlite3")
    lines: list[str] = []
    try:
        watcher = FolderWatcher(library, queue=None, folders=[WatchFolder(str(tmp_path / "nowhere"))],
                                report=lines.append)
        watcher.poll()
        assert lines == ["nowhere: not watched: no such folder"]
    finally:
        library.close()


# --- acceptance: the real `whisper-desk watch`, real tiny.en, a file copied slowly ---------------------------

CLI_SETTLE_S = 3.0  # far above the slow copy's pauses (0.3 s), so a loaded machine still copies "continuously"
CLI_WAIT_S = 240.0


@pytest.fixture(autouse=True)
def no_watch_process_outlives_its_test():
    yield
    while WatchProcess.started:
        process = WatchProcess.started.pop()
        if process.poll() is None:  # the test failed before it stopped the watch: so do its engine and all
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class WatchProcess:
    """`whisper-desk watch` in a subprocess; its stderr lines are collected as they come."""

    started: list[subprocess.Popen[str]] = []

    def __init__(self, folder: Path, out: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker.cli", "watch", str(folder), "--output-dir", str(out),
             "--format", "txt", "srt", "--settle", str(CLI_SETTLE_S), *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
            process_group=0,  # its own group (as a shell job is), so a failed test can stop what it started
        )
        WatchProcess.started.append(self.process)
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_line(self, predicate: Callable[[str], bool], what: str) -> str:
        with self._changed:
            found = self._changed.wait_for(lambda: next((l for l in self.lines if predicate(l)), None)
                                           or self.process.poll() is not None, CLI_WAIT_S)
            line = next((l for l in self.lines if predicate(l)), None)
        assert found and line is not None, f"no line {what!r}; stderr so far:\n" + "\n".join(self.lines)
        return line

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it; the exit code."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code

    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.lines)


def _copy_slowly(source: Path, target: Path, pieces: int = 10, pause_s: float = 0.3) -> float:
    """Write `source` to `target` in pieces over a few seconds, as a slow copy does; the time it ended."""
    data = source.read_bytes()
    step = len(data) // pieces + 1
    with open(target, "wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start:start + step])
            handle.flush()
            time.sleep(pause_s)
    return time.time()


def _jobs(library_path: Path) -> list:
    library = Library(library_path)
    try:
        return library.jobs.all()
    finally:
        library.close()


def _normalised(text: str) -> str:
    return " ".join("".join(c for c in text.lower() if c.isalnum() or c.isspace()).split())


def test_cli_transcribes_a_slowly_copied_file_once_after_the_copy_and_never_again(tmp_path, jfk, isolated_dirs):
    from worker.library.database import default_library_path

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    watch = WatchProcess(inbox, out)
    watch.wait_line(lambda l: l.startswith("watching "), "watching")
    (inbox / "notes.txt").write_text("not audio")
    shutil.copyfile(jfk, inbox / "clip.flac.part")
    copy = {}
    copier = threading.Thread(target=lambda: copy.update(ended=_copy_slowly(jfk, inbox / "jfk.flac")))
    copier.start()
    copier.join()
    watch.wait_line(lambda l: l.startswith("jfk.flac: wrote") and l.endswith("jfk.srt"), "the outputs written")
    assert "ask not what your country can do for you" in _normalised((out / "jfk.txt").read_text(encoding="utf-8"))
    assert watch.interrupt() == 130
    text = watch.stderr()
    assert "Traceback" not in text
    assert "notes.txt: ignored: not a media file" in text
    assert "clip.flac.part: ignored: a partial download (waiting for the finished file)" in text

    [job] = _jobs(default_library_path())  # the app's library (under this test's data folder)
    assert Path(job.path).name == "jfk.flac" and job.status == "done"
    assert job.created >= copy["ended"]  # queued only after the copy ended
    assert Path(job.path).stat().st_size == jfk.stat().st_size
    assert job.options.word_timestamps  # the folder writes subtitles: they are cut at words, by the rules
    cues = pysubs2.load(str(out / "jfk.srt"))
    lines = [line for cue in cues for line in cue.text.split("\\N")]
    assert len(cues) >= 2 and all(len(cue.text.split("\\N")) <= 2 for cue in cues)
    assert max(len(line) for line in lines) <= Preferences().subtitle_max_line_chars

    again = WatchProcess(inbox, out)  # a restart: the file is remembered
    again.wait_line(lambda l: l == "inbox: 1 media file seen before, 0 new", "the first round")
    time.sleep(CLI_SETTLE_S + 2)  # a few rounds more: still nothing to do
    assert again.interrupt() == 130
    assert "jfk.flac" not in again.stderr() and "Traceback" not in again.stderr()
    assert len(_jobs(default_library_path())) == 1
    assert sorted(p.name for p in out.iterdir()) == ["jfk.srt", "jfk.txt"]


def test_cli_ctrl_c_while_transcribing_stops_cleanly_and_the_next_start_finishes(tmp_path, jfk):
    inbox, out, library_path = tmp_path / "inbox", tmp_path / "out", tmp_path / "watch.sqlite3"
    inbox.mkdir()
    shutil.copyfile(jfk, inbox / "jfk.flac")  # arrived before anything watched
    watch = WatchProcess(inbox, out, "--library", str(library_path))
    watch.wait_line(lambda l: l == "jfk.flac: transcribing", "transcribing")
    assert watch.interrupt() == 130  # (the model is still loading, or the job is running)
    assert "Traceback" not in watch.stderr() and "Task was destroyed" not in watch.stderr()

    again = WatchProcess(inbox, out, "--library", str(library_path))
    deadline = time.monotonic() + CLI_WAIT_S
    while not ((out / "jfk.txt").exists() and (out / "jfk.srt").exists()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert again.interrupt() == 130
    assert "Traceback" not in again.stderr()
    [job] = _jobs(library_path)
    assert job.status == "done", watch.stderr() + "\n---\n" + again.stderr()
    assert sorted(p.name for p in out.iterdir()) == ["jfk.srt", "jfk.txt"]


# --- the window: Preferences' watch folders, run off the GUI thread ----------------------------------------

def test_preferences_dialog_edits_watch_folders(qtbot, tmp_path):
    from gui.settings import SettingsDialog
    from gui.watch_folders import FORMATS, OUTPUT

    entry = WatchFolder(str(tmp_path / "rec"), "local", "tiny.en", ("txt",), "")
    dialog = SettingsDialog(Preferences(watch_folders=(entry,), model="base.en"))
    qtbot.addWidget(dialog)
    editor = dialog.watch_folders
    assert editor.table.rowCount() == 1 and dialog.preferences().watch_folders == (entry,)

    editor.add_row(WatchFolder(str(tmp_path / "calls"), editor.default_backend, editor.default_model))
    editor.table.item(1, FORMATS).setText("SRT; vtt, nonsense")
    editor.table.item(1, OUTPUT).setText(str(tmp_path / "subtitles"))
    assert dialog.preferences().watch_folders == (
        entry, WatchFolder(str(tmp_path / "calls"), "local", "base.en", ("srt", "vtt"), str(tmp_path / "subtitles")))
    editor.table.selectRow(0)
    editor._remove_selected()
    assert [w.folder for w in dialog.preferences().watch_folders] == [str(tmp_path / "calls")]


def test_window_watches_the_preferences_folders_and_transcribes_a_new_file(qtbot, library, lent_backend, jfk,
                                                                           tmp_path):
    from gui.main_window import MainWindow

    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    prefs = Preferences(check_modal_on_start=False,
                        watch_folders=(WatchFolder(str(inbox), formats=("txt",), output_dir=str(out)),))
    window = MainWindow(library=library, preferences=prefs, backend_factory=lambda name, p: lent_backend)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    try:
        qtbot.waitUntil(lambda: window.watch_runner.service is not None, timeout=10000)
        shutil.copyfile(jfk, inbox / "jfk.flac")
        qtbot.waitUntil(lambda: (out / "jfk.txt").exists(), timeout=int(CLI_WAIT_S * 1000))
        assert "ask not what your country" in _normalised((out / "jfk.txt").read_text(encoding="utf-8"))
        qtbot.waitUntil(lambda: any(line.endswith("jfk.txt") and "wrote" in line for line in window.log_panel.lines()),
                        timeout=10000)
        [job] = library.jobs.all()
        assert window.model.row_of(job.id) is not None and job.status == "done"

        window.apply_preferences(Preferences(check_modal_on_start=False))  # no folders: the watcher stops
        assert window.watch_runner.service is None
    finally:
        window.shutdown()

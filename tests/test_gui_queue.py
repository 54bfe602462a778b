"""The queue in the window (pytest-qt, offscreen, real tiny.en on this computer): files dropped or opened are
queued (folders searched in the background, the window never waits), jobs run in worker threads with moving
progress, cancel works mid-job, bad files fail with their one-line reason while the others finish."""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import pysubs2
import pytest
from PySide6.QtCore import QMimeData, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QDialog
from speech_text import JFK_PHRASE, normalise

from gui.main_window import MainWindow
from gui.queue_model import BACKEND, DURATION, ELAPSED, FILE, PROGRESS, STATUS
from gui.settings import Preferences
from worker.library.jobs import JobRecord
from worker.library.library import Library

FINISHED = ("done", "failed", "cancelled")


@pytest.fixture
def window(qtbot, library, lent_backend):
    win = MainWindow(library=library, preferences=Preferences(check_modal_on_start=False),
                     backend_factory=lambda name, prefs: lent_backend)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.shutdown()


def cell(window: MainWindow, job_id: int, column: int, role=Qt.ItemDataRole.DisplayRole):
    row = window.model.row_of(job_id)
    assert row is not None, f"job {job_id} is not in the table"
    return window.model.index(row, column).data(role)


def drop_on(widget, paths: list[Path]) -> None:
    """What the platform does when files are dragged from a file manager and dropped on `widget`."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    point = widget.rect().center()
    enter = QDragEnterEvent(point, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    assert enter.isAccepted()
    drop = QDropEvent(point, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    assert drop.isAccepted()


def queue_paths(qtbot, window: MainWindow, paths: list[Path]) -> list[JobRecord]:
    """window.add_paths (File > Open, the command line), waiting for the background scan: the new jobs."""
    with qtbot.waitSignal(window.controller.pathsAdded, timeout=10000) as added:
        window.add_paths(paths)
    return added.args[0]


def wait_finished(qtbot, window: MainWindow, library: Library, ids: list[int], timeout_ms: int = 120000) -> None:
    """Finished in the library, and the window shows it (its reports arrive just after the library changes)."""

    def shown(job_id: int) -> bool:
        status = library.jobs.get(job_id).status
        return status in FINISHED and cell(window, job_id, STATUS) == status

    qtbot.waitUntil(lambda: all(shown(i) for i in ids), timeout=timeout_ms)


def test_dropping_files_and_a_folder_queues_them(qtbot, window, library, shared_audio, tmp_path):
    window.set_paused(True)  # only queue: nothing runs in this test
    folder = tmp_path / "interviews"
    (folder / "day 1").mkdir(parents=True)
    shutil.copy(shared_audio / "jfk.flac", folder / "day 1" / "speech.flac")
    shutil.copy(shared_audio / "hotwords.mp3", folder / "intro.mp3")
    (folder / "notes.txt").write_text("not audio")

    qtbot.waitUntil(lambda: window.transcript_pane.uses_editor, timeout=3000)
    added: list[list[JobRecord]] = []
    window.controller.pathsAdded.connect(lambda records, _notes: added.append(records))
    drop_on(window.table.viewport(), [folder])  # the queue table does not take drops: the window does
    drop_on(window.transcript_pane.editor.view.viewport(), [shared_audio / "stereo_diarization.wav"])
    drop_on(window.log_panel.view.viewport(), [tmp_path / "missing.mp3"])  # a text view would take it itself
    window.add_paths([shared_audio / "multilingual.mp3"])  # File > Open and the command line
    qtbot.waitUntil(lambda: len(added) == 4, timeout=10000)  # scanned in the background, one answer per drop
    [opened] = added[-1]

    names = [window.model.index(r, FILE).data() for r in range(window.model.rowCount())]
    assert names == ["speech.flac", "intro.mp3", "stereo_diarization.wav", "multilingual.mp3"]
    assert [job.name for job in library.jobs.all()] == names  # written to the library at once
    assert {job.status for job in library.jobs.all()} == {"queued"}
    log = window.log_panel.text()
    assert "skipped 1 file(s) that are not audio or video (notes.txt)" in log
    assert "missing.mp3: not found" in log
    assert window.totals_label.text() == "paused · 4 queued"

    # durations are probed in the background and fill in
    speech = library.jobs.all()[0]
    qtbot.waitUntil(lambda: cell(window, speech.id, DURATION) == "0:11", timeout=10000)
    qtbot.waitUntil(lambda: cell(window, opened.id, DURATION) == "1:00", timeout=10000)
    assert library.jobs.get(speech.id).duration == pytest.approx(11.0, abs=0.1)


def make_archive(folder: Path, jfk: Path, others: int) -> list[Path]:
    """A folder tree of `others` small text files and three copies of jfk.flac in nested folders."""
    for i in range(others):
        other = folder / "docs" / f"{i // 100:02d}" / f"{i:04d}.txt"
        other.parent.mkdir(parents=True, exist_ok=True)
        other.write_text("not audio")
    copies = [folder / "a" / "jfk 1.flac", folder / "b" / "c" / "jfk 2.flac", folder / "jfk 3.flac"]
    for copy in copies:
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(jfk, copy)
    (folder / ".DS_Store").write_bytes(b"\0")  # hidden: skipped without a word
    return copies


def test_dropping_a_big_folder_searches_it_without_blocking_the_window(qtbot, window, library, shared_audio, jfk,
                                                                         tmp_path, monkeypatch):
    import worker.media.audio as audio

    window.set_paused(True)
    folder = tmp_path / "archive"
    make_archive(folder, jfk, others=2000)

    # the search can only go on once the window's timer has ticked during it: proof the event loop kept running
    added: list[tuple[list[JobRecord], list[str]]] = []
    messages: list[str] = []
    searching, window_ticked = threading.Event(), threading.Event()
    ticks_while_searching = 0
    real_is_media_path = audio.is_media_path

    def gated_is_media_path(path: Path) -> bool:
        searching.set()
        if not window_ticked.wait(timeout=5):
            window_ticked.set()  # the window never ticked: let the search end (the test fails below)
        return real_is_media_path(path)

    def tick() -> None:
        nonlocal ticks_while_searching
        if searching.is_set() and not added:
            ticks_while_searching += 1
            if ticks_while_searching >= 3:
                window_ticked.set()

    def paths_added(records: list[JobRecord], notes: list[str]) -> None:
        added.append((records, notes))
        messages.append(window.statusBar().currentMessage())  # the window has shown its message by now

    window.controller.pathsAdded.connect(paths_added)
    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(5)
    monkeypatch.setattr(audio, "is_media_path", gated_is_media_path)
    drop_on(window.table.viewport(), [folder])
    drop_on(window.table.viewport(), [shared_audio / "hotwords.mp3"])  # a second drop while the folder is searched
    assert window.model.rowCount() == 0  # both drops returned at once
    qtbot.waitUntil(lambda: len(added) == 2, timeout=30000)
    timer.stop()

    assert ticks_while_searching >= 3
    names = [window.model.index(r, FILE).data() for r in range(window.model.rowCount())]
    assert names == ["jfk 1.flac", "jfk 2.flac", "jfk 3.flac", "hotwords.mp3"]  # in drop order
    assert [job.name for job in library.jobs.all()] == names and {job.status for job in library.jobs.all()} == {"queued"}
    (folder_jobs, folder_notes), (file_jobs, file_notes) = added
    assert [job.name for job in folder_jobs] == names[:3] and [job.name for job in file_jobs] == names[3:]
    skipped = f"{folder}: skipped 2000 file(s) that are not audio or video (0000.txt, 0001.txt, 0002.txt, …)"
    assert folder_notes == [skipped] and file_notes == []
    assert messages == ["Queued 3 file(s); 1 skipped", "Queued 1 file(s)"]
    assert window.log_panel.lines().count(skipped) == 1


def test_closing_while_a_folder_is_searched_waits_for_the_search(qtbot, window, library, jfk, tmp_path, monkeypatch):
    import worker.media.audio as audio

    window.set_paused(True)
    folder = tmp_path / "archive"
    make_archive(folder, jfk, others=300)
    searching = threading.Event()
    real_is_media_path = audio.is_media_path

    def slow_is_media_path(path: Path) -> bool:
        searching.set()
        time.sleep(0.005)  # about two seconds for the whole folder
        return real_is_media_path(path)

    monkeypatch.setattr(audio, "is_media_path", slow_is_media_path)
    window.add_paths([folder])
    qtbot.waitUntil(searching.is_set, timeout=5000)
    window.shutdown()

    assert not window.controller.scanner.running
    assert [job.name for job in library.jobs.all()] == ["jfk 1.flac", "jfk 2.flac", "jfk 3.flac"]  # kept for the next start
    assert {job.status for job in library.jobs.all()} == {"queued"}


def test_jfk_transcribes_on_this_computer_with_moving_progress(qtbot, window, library, jfk, tmp_path):
    exports = tmp_path / "exports"
    window.controller.set_preferences(replace(window.preferences, auto_export_formats=("srt", "txt"),
                                              auto_export_folder=str(exports)))
    progress: list[tuple[float, str]] = []
    window.controller.progressed.connect(lambda _job, fraction, label, _eta: progress.append((fraction, label)))
    [job] = queue_paths(qtbot, window, [jfk])
    wait_finished(qtbot, window, library, [job.id])

    record = library.jobs.get(job.id)
    assert record.status == "done", record.error
    assert JFK_PHRASE in normalise(window.transcript_text())  # nothing selected: the pane shows the job that finished
    assert JFK_PHRASE in normalise(library.transcripts.get(job.id).text)  # saved in the library
    assert any(0.0 < fraction < 1.0 for fraction, _ in progress), progress  # the bar moved during the job
    assert cell(window, job.id, STATUS) == "done" and cell(window, job.id, PROGRESS) == "done"
    assert cell(window, job.id, DURATION) == "0:11" and cell(window, job.id, ELAPSED)

    lines = [line for line in window.log_panel.lines() if line.startswith("jfk.flac: ")]
    assert any("gpu=cpu" in line and "rtf=" in line for line in lines), lines  # CPU timings, like GPU ones
    assert any("summary wall=" in line and "CPU-s=" in line for line in lines), lines
    assert library.log.lines(job.id) == lines  # persisted as they came

    # automatic export on completion, in the formats and folder from the preferences
    assert sorted(p.name for p in exports.iterdir()) == ["jfk.srt", "jfk.txt"]
    subtitles = pysubs2.load(str(exports / "jfk.srt"))
    assert JFK_PHRASE in normalise(" ".join(event.plaintext for event in subtitles))
    assert JFK_PHRASE in normalise((exports / "jfk.txt").read_text(encoding="utf-8"))
    assert any(line.endswith(f"exported {exports / 'jfk.srt'}") for line in lines)


def test_cancel_mid_job_and_the_next_job_still_runs(qtbot, window, library, shared_audio, jfk, tmp_path):
    import numpy as np
    import soundfile as sf

    from worker.media.audio import decode_audio

    long_file = tmp_path / "long.flac"  # 5 minutes: certainly still running when it is cancelled, even on a fast engine
    sf.write(long_file, np.tile(decode_audio(shared_audio / "multilingual.mp3"), 5), 16000)
    long_job, next_job = queue_paths(qtbot, window, [long_file, jfk])
    stages: list[str] = []
    window.controller.progressed.connect(lambda job, _f, label, _eta: stages.append(label) if job == long_job.id else None)
    qtbot.waitUntil(lambda: library.jobs.get(long_job.id).status == "running" and len(stages) >= 2, timeout=60000)
    assert library.jobs.get(next_job.id).status == "queued"  # one local job at a time

    window.select_jobs([long_job.id])
    window.cancel_selected()
    wait_finished(qtbot, window, library, [long_job.id], timeout_ms=30000)
    assert library.jobs.get(long_job.id).status == "cancelled"
    assert cell(window, long_job.id, PROGRESS) == "cancelled"
    assert library.transcripts.get(long_job.id) is None

    wait_finished(qtbot, window, library, [next_job.id])
    assert library.jobs.get(next_job.id).status == "done"
    window.select_jobs([next_job.id])
    assert JFK_PHRASE in normalise(window.transcript_text())


def test_bad_files_fail_with_their_reason_while_the_others_finish(qtbot, window, library, jfk, tmp_path):
    garbage = tmp_path / "garbage.m4a"
    garbage.write_bytes(os.urandom(64 * 1024))
    vanished = tmp_path / "vanished.flac"
    shutil.copy(jfk, vanished)
    window.set_paused(True)
    bad, gone, good = queue_paths(qtbot, window, [garbage, vanished, jfk])
    vanished.unlink()  # deleted after it was queued
    window.set_paused(False)
    wait_finished(qtbot, window, library, [bad.id, gone.id, good.id])

    assert [library.jobs.get(j.id).status for j in (bad, gone, good)] == ["failed", "failed", "done"]
    bad_reason = cell(window, bad.id, PROGRESS)
    assert bad_reason.startswith("garbage.m4a: ") and "\n" not in bad_reason
    assert cell(window, gone.id, PROGRESS) == "vanished.flac: file not found"
    assert cell(window, bad.id, STATUS) == "failed"
    assert cell(window, bad.id, DURATION) == "—"  # could not be probed either
    assert bad_reason in cell(window, bad.id, PROGRESS, Qt.ItemDataRole.ToolTipRole)  # details on demand
    assert library.jobs.get(bad.id).error == bad_reason
    assert QApplication.activeModalWidget() is None
    assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, QDialog) and w.isVisible()]  # no dialogs
    assert JFK_PHRASE in normalise(library.transcripts.get(good.id).text)

    shutil.copy(jfk, vanished)  # the file is back: retry it
    window.select_jobs([gone.id])
    window.retry_selected()
    wait_finished(qtbot, window, library, [gone.id])
    assert library.jobs.get(gone.id).status == "done" and library.jobs.get(gone.id).error is None
    assert JFK_PHRASE in normalise(window.transcript_text())  # selected: its transcript is shown


def test_modal_job_streams_chunks_and_logs_a_timing_line_per_chunk(qtbot, library, jfk):
    """The Modal path end to end in the window, against the stand-in remote (the real worker body, run here)."""
    from tests.modal_standin import StandInRemote
    from worker.modal.fanout import ModalBackend

    remote = StandInRemote(latency_s=0.2)
    backend = ModalBackend(remote=remote, chunk_s=8.0, max_containers=4)
    window = MainWindow(library=library, preferences=Preferences(backend="modal", check_modal_on_start=False),
                        backend_factory=lambda name, prefs: backend, modal_ready=lambda: True)
    qtbot.addWidget(window)
    window.show()
    arrived: list[int] = []
    window.controller.segmentsArrived.connect(lambda _job, segments: arrived.append(len(segments)))
    [job] = queue_paths(qtbot, window, [jfk])
    wait_finished(qtbot, window, library, [job.id])
    window.shutdown()

    assert library.jobs.get(job.id).status == "done", library.jobs.get(job.id).error
    assert cell(window, job.id, BACKEND) == "Modal T4"
    assert remote.calls >= 2 and len(arrived) >= 2  # fanned out; segments arrived chunk by chunk
    lines = library.log.lines(job.id)
    chunk_lines = [line for line in lines if re.match(r"jfk\.flac: chunk \d+/\d+ gpu=", line)]
    assert len(chunk_lines) == remote.calls, lines
    assert lines[-1].startswith("jfk.flac: summary wall=")
    assert "ask not what your country" in normalise(library.transcripts.get(job.id).text)

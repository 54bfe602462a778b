"""Nothing is lost: a new window on the same library shows the same jobs and transcripts, and a job whose
app was killed mid-run (kill -9) is queued again and completes at the next start."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from speech_text import JFK_PHRASE, normalise

from gui.main_window import MainWindow
from gui.queue_model import FILE, STATUS
from gui.settings import Preferences
from worker.library.database import default_library_path
from worker.library.library import Library

ROOT = Path(__file__).resolve().parent.parent


def open_window(qtbot, lent_backend) -> MainWindow:
    """A window as the app opens it: the library at the platform's user data dir (isolated per test)."""
    window = MainWindow(preferences=Preferences(check_modal_on_start=False), backend_factory=lambda name, prefs: lent_backend)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    return window


def rows(window: MainWindow) -> list[tuple[str, str]]:
    return [(window.model.index(r, FILE).data(), window.model.index(r, STATUS).data()) for r in range(window.model.rowCount())]


def test_a_new_window_shows_the_same_library(qtbot, lent_backend, shared_audio, jfk, isolated_dirs):
    first = open_window(qtbot, lent_backend)
    assert first.library.path == default_library_path()
    assert str(default_library_path()).startswith(str(isolated_dirs))
    with qtbot.waitSignal(first.controller.pathsAdded, timeout=10000) as added:  # searched in the background
        first.add_paths([jfk])
    [done] = added.args[0]
    qtbot.waitUntil(lambda: first.library.jobs.get(done.id).status == "done", timeout=300000)
    # the library says done a moment before the window hears it: wait until the pane shows the finished job
    qtbot.waitUntil(lambda: first.transcript_pane.uses_editor and first.transcript_pane.job_id == done.id
                    and not first.transcript_pane.editor.model.read_only, timeout=15000)
    editor = first.transcript_pane.editor
    assert editor.edit_text(0, editor.model.segment(0).text + " (checked)")  # an edit, saved as it happens
    first.set_paused(True)
    with qtbot.waitSignal(first.controller.pathsAdded, timeout=10000) as added:
        first.add_paths([shared_audio / "hotwords.mp3"])
    [waiting] = added.args[0]
    before_rows = rows(first)
    before_log = first.log_panel.lines()
    first.close()  # closes its library

    second = open_window(qtbot, lent_backend)
    assert rows(second)[0] == before_rows[0] == ("jfk.flac", "done")
    assert rows(second)[1][0] == "hotwords.mp3"  # kept in the queue, and it runs now
    assert second.log_panel.lines()[: len(before_log)] == before_log  # the timing log is back too
    second.select_jobs([done.id])
    assert JFK_PHRASE in normalise(second.transcript_text())
    assert "(checked)" in second.transcript_text()  # the edit is back too
    assert second.transcript_pane.title.text().endswith(" — edited")
    qtbot.waitUntil(lambda: second.library.jobs.get(waiting.id).status == "done", timeout=300000)
    assert JFK_PHRASE in normalise(second.transcript_text())  # still the selected job
    second.table.clearSelection()
    assert second.transcript_pane.job_id == waiting.id  # nothing selected: the job that just finished
    second.close()


def _status_in_db(db: Path) -> list[str]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return [r[0] for r in conn.execute("SELECT status FROM jobs ORDER BY id")]
    except sqlite3.Error:
        return []


def test_a_job_interrupted_by_killing_the_app_runs_again_at_the_next_start(qtbot, lent_backend, jfk):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    db = default_library_path()
    app = subprocess.Popen([sys.executable, "-m", "gui", str(jfk)], cwd=ROOT, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _status_in_db(db) != ["running"]:
            assert app.poll() is None, "the app exited"
            time.sleep(0.05)
        assert _status_in_db(db) == ["running"]
        os.kill(app.pid, signal.SIGKILL)  # kill -9: no chance to clean up
        app.wait(10)
    finally:
        try:
            os.killpg(app.pid, signal.SIGKILL)  # and whatever it had started
        except ProcessLookupError:
            pass
    assert _status_in_db(db) == ["running"]  # what the killed app left behind

    window = open_window(qtbot, lent_backend)
    assert "1 interrupted job(s) queued again" in window.log_panel.text()
    [job] = window.library.jobs.all()
    assert job.name == "jfk.flac"
    qtbot.waitUntil(lambda: window.library.jobs.get(job.id).status == "done", timeout=300000)
    # the library is written first, then the window hears of it: what the user reads comes a moment later
    qtbot.waitUntil(lambda: JFK_PHRASE in normalise(window.transcript_text()), timeout=30000)
    window.close()
    reopened = Library(db)
    assert JFK_PHRASE in normalise(reopened.transcripts.get(job.id).text)  # on disk, for the next start
    reopened.close()

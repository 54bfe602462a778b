"""One window per library, with real processes: a second launch hands its file to the window already open
and exits at once; that window transcribes both files, each once, and exits 0 when closed (also after files
were handed to it while it ran: a crash at exit is a failure too). A window that does not answer is said
so in one line, and a socket left by a crashed instance does not block a new start."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtNetwork import QLocalServer
from speech_text import JFK_PHRASE, normalise

from gui.single_instance import server_name
from worker.library.database import default_library_path
from worker.library.library import Library

ROOT = Path(__file__).resolve().parent.parent


def launch(*files: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")  # the autouse fixture isolates XDG_* (the library)
    return subprocess.Popen([sys.executable, "-m", "gui", *map(str, files)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def jobs_in(db: Path) -> list[tuple[str, str]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return [(Path(p).name, s) for p, s in conn.execute("SELECT path, status FROM jobs ORDER BY id")]
    except sqlite3.Error:
        return []


def wait_for(condition, timeout: float, app: subprocess.Popen[str] | None = None) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        assert app is None or app.poll() is None, f"the app exited: {app.communicate()}"
        time.sleep(0.1)


def stop(app: subprocess.Popen[str]) -> tuple[int | None, str]:
    """Close the window as Ctrl+C does; its exit code (None: it did not exit within a minute) and stderr."""
    if app.poll() is None:
        os.kill(app.pid, signal.SIGINT)  # closes the window cleanly
        try:
            app.wait(60)
        except subprocess.TimeoutExpired:
            pass
    code = app.poll()
    try:
        os.killpg(app.pid, signal.SIGKILL)  # and whatever it started
    except ProcessLookupError:
        pass
    _out, err = app.communicate()
    return code, err


def stale_socket(name: str) -> Path:
    """What a crashed instance leaves: a socket file nobody listens on."""
    path = Path(tempfile.gettempdir()) / name
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.close()  # the file stays
    return path


def test_a_second_launch_hands_its_file_to_the_first_window_which_transcribes_both_once(shared_audio, jfk):
    db = default_library_path()
    stale = stale_socket(server_name(db))  # a crash before this must not matter
    first = launch(jfk)
    try:
        wait_for(lambda: len(jobs_in(db)) == 1, 60, first)  # listening before its files are queued

        started = time.monotonic()
        second = launch(shared_audio / "hotwords.mp3")
        out, err = second.communicate(timeout=60)
        took = time.monotonic() - started
        assert second.returncode == 0, err
        assert out.strip() == "Whisper Desk is already open: 1 file(s) handed to it."
        assert took < 20, f"the second launch took {took:.1f} s"  # ~1 s on an idle machine (process start)

        wait_for(lambda: jobs_in(db) == [("jfk.flac", "done"), ("hotwords.mp3", "done")], 180, first)
        assert first.poll() is None  # still the one window
    finally:
        code, err = stop(first)
    assert code == 0, f"the window exited with {code}: {err[-3000:]}"
    library = Library(db)
    [jfk_job, hot_job] = library.jobs.all()
    assert JFK_PHRASE in normalise(library.transcripts.get(jfk_job.id).text)
    assert "comfy" in normalise(library.transcripts.get(hot_job.id).text)
    assert not any("interrupted" in line for line in library.log.lines())  # nothing ran twice
    library.close()
    assert not stale.exists() or stale.is_socket()


HANDOVERS = 6  # with PySide6 6.12.0 on CPython 3.11 (every Python emit() took a reference from True) this many
# transcriptions drained True's count enough for "Fatal Python error: bool_dealloc" (exit 134) as the app exited


def test_files_handed_to_the_open_window_while_it_runs_then_closing_exits_cleanly(jfk):
    db = default_library_path()
    for round_ in range(2):
        app = launch(jfk)
        try:
            queued = 1 + round_ * (HANDOVERS + 1)  # this launch's file, after the earlier rounds' jobs
            wait_for(lambda n=queued: len(jobs_in(db)) == n, 60, app)
            for _ in range(HANDOVERS):
                handed = subprocess.run([sys.executable, "-m", "gui", str(jfk)], cwd=ROOT, text=True,
                                        capture_output=True, timeout=60, env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
                assert handed.returncode == 0, handed.stderr
            wanted = (HANDOVERS + 1) * (round_ + 1)
            wait_for(lambda n=wanted: [status for _, status in jobs_in(db)] == ["done"] * n, 300, app)
        finally:
            code, err = stop(app)
        assert code == 0, f"round {round_ + 1}: the window exited with {code}: {err[-3000:]}"
        assert "Fatal Python error" not in err


def test_a_window_that_does_not_answer_is_said_so_in_one_line(qtbot, jfk):
    db = default_library_path()
    silent = QLocalServer()  # takes connections, never answers (a hung window)
    assert silent.listen(server_name(db))
    try:
        started = time.monotonic()
        second = launch(jfk)
        out, err = second.communicate(timeout=60)
    finally:
        silent.close()
    assert second.returncode == 1 and out == ""
    assert err.strip() == f"Whisper Desk is already open on {db} but does not answer; close it or try again."
    assert time.monotonic() - started < 30
    assert jobs_in(db) == []  # it did not start a window of its own

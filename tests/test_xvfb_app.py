"""The real app on a real X server (Xvfb), as a new user: `whisper-desk jfk.flac` shows the transcript.

What is on the screen is read back the way a person would: a screenshot of the X display, read by the
tesseract OCR engine (Debian packages xvfb and tesseract-ocr, installed by `scripts/install.sh --test`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from worker.library.database import default_library_path
from worker.library.library import Library

GRAB_SCREEN = """
import sys
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
app = QGuiApplication(["grab"])
shot = QGuiApplication.primaryScreen().grabWindow(0)
shot = shot.scaled(shot.width() * 2, shot.height() * 2, Qt.AspectRatioMode.KeepAspectRatio,
                   Qt.TransformationMode.SmoothTransformation)
sys.exit(0 if shot.save(sys.argv[1]) else 1)
"""


def start_xvfb() -> tuple[subprocess.Popen[bytes], str]:
    """Xvfb on a free display number (it picks one and writes it to a pipe)."""
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    assert number, "Xvfb did not start"
    return server, f":{number}"


def screen_text(display_env: dict[str, str], shot: Path) -> str:
    subprocess.run([sys.executable, "-c", GRAB_SCREEN, str(shot)], env=display_env, check=True, timeout=60)
    ocr = subprocess.run(["tesseract", str(shot), "stdout"], capture_output=True, text=True, timeout=120, check=True)
    return " ".join(ocr.stdout.lower().split())


def test_new_user_runs_the_app_with_a_file_and_sees_its_transcript(jfk: Path, tmp_path: Path) -> None:
    server, display = start_xvfb()
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}  # the real xcb platform
    env["DISPLAY"] = display
    env["HOME"] = str(tmp_path / "home")  # the autouse fixture already points XDG_* and Modal's config there
    app = subprocess.Popen([str(Path(sys.executable).parent / "whisper-desk"), str(jfk)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        library_path = default_library_path()
        deadline = time.monotonic() + 180
        status = None
        while time.monotonic() < deadline and status != "done":
            assert app.poll() is None, app.stdout.read().decode(errors="replace") if app.stdout else ""
            if library_path.exists():
                library = Library(library_path)
                jobs = library.jobs.all()
                library.close()
                status = jobs[0].status if jobs else None
                assert status != "failed", jobs[0].error
            time.sleep(0.5)
        assert status == "done", f"the job did not finish in time (status {status})"

        text = ""
        for _ in range(10):  # the pane shows the transcript right after the job is stored
            time.sleep(1.0)
            text = screen_text(env, tmp_path / "screen.png")
            if "americans" in text and "your country." in text:
                break
        # a wrapped table cell reads as two pieces: check phrases that fit on one line
        for phrase in ("fellow americans", "ask not what your country can do", "ask what you can do for your country"):
            assert phrase in text, (phrase, text)
        assert "jfk.flac" in text, text  # the queue row
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
        server.terminate()
        server.wait(timeout=10)

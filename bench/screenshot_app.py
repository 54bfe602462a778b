"""The README's editor screenshot, taken from the real X display (run under Xvfb).

    xvfb-run -a -s "-screen 0 1400x900x24" env QT_QPA_PLATFORM=xcb .venv/bin/python -m bench.screenshot_app docs/screenshot-editor.png

A new user's library in a temporary folder: three recordings from ../shared/audio are transcribed for real
on this computer (bundled tiny.en), then jfk.flac is shown in the editor with one corrected segment, the
find bar searching for "country" and playback running from a segment. The picture is read back from the X
server (QScreen.grabWindow), so it is what a user would see. The window's own screenshot as a new user
running `whisper-desk FILE` is scripts/screenshot.sh.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.fresh_home import fresh_user_home

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT.parent / "shared" / "audio"
FILES = ("jfk.flac", "hotwords.mp3", "multilingual.mp3")


def main(out: Path) -> int:
    fresh_user_home("whisper-desk-shot-")

    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from bench.qt_wait import run_for, wait_until
    from gui.main_window import MainWindow
    from gui.settings import APPLICATION, ORGANIZATION, settings_store

    app = QApplication.instance() or QApplication(["whisper-desk"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    store = settings_store()
    store.setValue("offered_modal_setup", True)  # no first-start banner in the picture
    store.sync()
    window = MainWindow()
    window.resize(1300, 820)
    window.show()
    jobs: list = []  # JobRecords, once the background search has queued them
    finished: set[int] = set()
    window.controller.pathsAdded.connect(lambda records, _notes: jobs.extend(records))
    window.controller.jobFinished.connect(lambda ending: finished.add(ending.job_id))
    window.add_paths([AUDIO / name for name in FILES])
    wait_until(lambda: len(jobs) == len(FILES), 30, "queueing the files")
    wait_until(lambda: len(finished) == len(jobs), 300, "transcribing the files")

    jfk = next(job for job in jobs if job.name == "jfk.flac")
    window.select_jobs([jfk.id])
    wait_until(lambda: window.shown_job_id() == jfk.id and window.transcript_pane.uses_editor, 20, "showing jfk.flac")
    editor = window.transcript_pane.editor
    first = editor.transcript().segments[0].text
    editor.edit_text(0, first.replace("Americans ask", "Americans, ask"))
    window.transcript_pane.play_from(editor.transcript().segments[-1].start)
    wait_until(lambda: editor.highlighted_row >= 0, 20, "playback")
    editor.find_bar.open_bar(replace=True)
    editor.find_bar.find_edit.setText("country")
    run_for(1500)  # playback moves on a little, the find bar counts

    shot = QGuiApplication.primaryScreen().grabWindow(window.winId())
    if window.transcript_pane.player is not None:
        window.transcript_pane.player.pause()
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = shot.save(str(out))
    window.close()
    window.shutdown()
    print(f"wrote {out}" if ok else f"could not write {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "screenshot-editor.png")))

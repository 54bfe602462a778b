"""The README's feature screenshots, taken from the real X display (run under Xvfb).

    xvfb-run -a -s "-screen 0 1400x900x24" env QT_QPA_PLATFORM=xcb .venv/bin/python -m bench.screenshot_features docs

Each picture is a real run in a new user's library (temporary folders), read back from the X server
(QScreen.grabWindow), so it is what a user would see:
- docs/screenshot-speakers.png: a three-speaker dialogue joined from the shared recordings (../shared/audio,
  as bench/speakers_bench.py builds it) transcribed on this computer with speakers on (Automatic), shown in
  the editor: the Speaker column and the speakers strip, one speaker renamed;
- docs/screenshot-search.png: the same library plus jfk.flac and hotwords.mp3, File > Search transcripts
  with the hits highlighted, one opened (the dialogue shown at that segment);
- docs/screenshot-modal.png: a Modal job against the loopback control plane (tests/modal_control_plane.py):
  `whisper-desk deploy` runs for real against it, then the window sends a ~70 s file through the real
  `modal` client in 12 s chunks; the plane's containers run the deployed class on this computer's CPU, so
  the timing lines say gpu=cpu. Taken while chunks are still running (progress column, one log line per
  chunk), in a second process with its own environment.

`--only speakers,search,modal` takes some of them.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.fresh_home import fresh_user_home

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT.parent / "shared" / "audio"
SHOTS = {"speakers": "screenshot-speakers.png", "search": "screenshot-search.png", "modal": "screenshot-modal.png"}
DIALOGUE_KEYS = ["A1", "C", "A3", "B1"]  # bench.speakers_bench.REAL_DIALOGUES' three speakers (A-B-A-C)
SPEAKER_NAMED = ("country", "Kennedy")  # the speaker of the segment saying this is renamed, as Rename… does
SEARCH_QUERY = "you"  # words in all three recordings
SEARCH_DOCK_WIDTH = 560
MODAL_CHUNK_S = 12.0
WINDOW_SIZE = (1300, 820)


def new_user_home() -> Path:
    home = fresh_user_home("whisper-desk-shot-")
    os.environ["HOME"] = str(home)
    return home


def open_window(preferences: Any) -> Any:
    from PySide6.QtWidgets import QApplication

    from gui.main_window import MainWindow
    from gui.settings import APPLICATION, ORGANIZATION, settings_store

    app = QApplication.instance() or QApplication(["whisper-desk"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    store = settings_store()
    store.setValue("offered_modal_setup", True)  # no first-start banner in the picture
    store.sync()
    window = MainWindow(preferences=preferences)
    window.resize(*WINDOW_SIZE)
    window.show()
    return window


def queue_and_wait(window: Any, paths: list[Path], timeout_s: float) -> list[Any]:
    """Add `paths` to the window's queue as a drop does; the JobRecords once every job has finished."""
    from bench.qt_wait import wait_until

    jobs: list = []
    finished: set[int] = set()
    window.controller.pathsAdded.connect(lambda records, _notes: jobs.extend(records))
    window.controller.jobFinished.connect(lambda ending: finished.add(ending.job_id))
    window.add_paths(paths)
    wait_until(lambda: len(jobs) == len(paths), 30, "queueing the files")
    wait_until(lambda: finished >= {job.id for job in jobs}, timeout_s, "transcribing the files")
    return jobs


def grab(window: Any, out: Path) -> None:
    from PySide6.QtGui import QGuiApplication

    from bench.qt_wait import run_for

    run_for(800)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not QGuiApplication.primaryScreen().grabWindow(window.winId()).save(str(out)):
        raise OSError(f"could not write {out}")
    print(f"wrote {out}")


def library_shots(out_dir: Path, which: set[str]) -> None:
    """The speakers editor and the search dock, from one library."""
    new_user_home()
    from PySide6.QtCore import Qt

    from bench.qt_wait import run_for, wait_until
    from bench.speakers_bench import real_dialogue
    from worker.jobs.preferences import Preferences

    work = Path(tempfile.mkdtemp(prefix="whisper-desk-dialogue-"))
    atexit.register(shutil.rmtree, work, True)
    dialogue = real_dialogue(work, DIALOGUE_KEYS, name="interview.wav")
    window = open_window(Preferences(speakers_default="auto"))
    try:
        jobs = queue_and_wait(window, [dialogue.path, AUDIO / "jfk.flac", AUDIO / "hotwords.mp3"], 600)
        interview = next(job for job in jobs if job.name == "interview.wav")
        window.select_jobs([interview.id])
        wait_until(lambda: window.shown_job_id() == interview.id and window.transcript_pane.uses_editor, 20,
                   "showing interview.wav")
        editor = window.transcript_pane.editor
        wait_until(lambda: bool(editor.transcript().speakers), 20, "the speakers strip")
        segments = editor.transcript().segments
        words, name = SPEAKER_NAMED
        named = next((s.speaker for s in segments if words in s.text and s.speaker), None)
        if named is not None:
            editor.speakers.rename(named, name)
        run_for(500)
        if "speakers" in which:
            grab(window, out_dir / SHOTS["speakers"])
        if "search" in which:
            window.resize(1390, 860)
            window.show_search()
            window.resizeDocks([window.search_dock], [SEARCH_DOCK_WIDTH], Qt.Orientation.Horizontal)
            panel = window.search_panel
            panel.box.setText(SEARCH_QUERY)
            panel.search_now()
            wait_until(lambda: len({hit.job_id for hit in panel.hits()}) >= 3, 20, "the search hits")
            row = next(i for i, hit in enumerate(panel.hits()) if hit.job_id == interview.id)
            panel.view.setCurrentIndex(panel.model.index(row, 0))
            window.open_search_hit(panel.hits()[row])  # as a click on the hit does: the transcript at that segment
            run_for(300)
            if window.transcript_pane.player is not None:
                window.transcript_pane.player.pause()
            grab(window, out_dir / SHOTS["search"])
    finally:
        window.close()
        window.shutdown()


def modal_medley(folder: Path) -> Path:
    """About 70 s from the shared recordings (as tests/test_modal_real.py's medley): JFK, the English half of
    the licence reading, JFK, the hotwords sentence, JFK, with pauses."""
    import numpy as np
    import soundfile

    from worker.core.constants import SAMPLE_RATE
    from worker.media.audio import decode_audio

    jfk = decode_audio(AUDIO / "jfk.flac")
    licence = decode_audio(AUDIO / "multilingual.mp3")[: SAMPLE_RATE * 27]
    hotwords = decode_audio(AUDIO / "hotwords.mp3")
    pause = np.zeros(SAMPLE_RATE * 2, dtype=np.float32)
    path = folder / "meeting.flac"
    soundfile.write(path, np.concatenate([jfk, pause, licence, pause, jfk, pause, hotwords, pause, jfk, pause]),
                    SAMPLE_RATE)
    return path


def modal_shot(out_dir: Path) -> None:
    """A Modal job in the window, against the loopback control plane after the real `whisper-desk deploy`."""
    home = new_user_home()
    sys.path.insert(0, str(ROOT / "tests"))
    from modal_control_plane import ControlPlane

    with ControlPlane(containers=3) as plane:
        os.environ.update(plane.env())  # before anything imports modal (it reads its config at import)
        deployed = subprocess.run([str(Path(sys.executable).parent / "whisper-desk"), "deploy"], cwd=ROOT,
                                  capture_output=True, text=True, timeout=300)
        print(f"whisper-desk deploy: exit {deployed.returncode}")
        if deployed.returncode != 0 or not plane.deployment.published:
            raise RuntimeError("whisper-desk deploy failed:\n" + deployed.stdout[-2000:] + deployed.stderr[-2000:])

        from bench.qt_wait import wait_until
        from worker.jobs.preferences import Preferences

        medley = modal_medley(home)
        window = open_window(Preferences(backend="modal", chunk_s=MODAL_CHUNK_S, max_containers=3,
                                         check_modal_on_start=True))
        try:
            jobs: list = []
            finished: set[int] = set()
            window.controller.pathsAdded.connect(lambda records, _notes: jobs.extend(records))
            window.controller.jobFinished.connect(lambda ending: finished.add(ending.job_id))
            window.add_paths([medley])
            wait_until(lambda: len(jobs) == 1, 30, "queueing the file")
            window.select_jobs([jobs[0].id])
            # mid-run: some chunks back (their timing lines in the log), others still on the plane
            wait_until(lambda: sum("gpu=" in line for line in window.log_panel.lines()) >= 3 or bool(finished),
                       600, "the first chunks' timing lines")
            grab(window, out_dir / SHOTS["modal"])
            wait_until(lambda: bool(finished), 600, "the Modal job")  # ends as a user would let it
        finally:
            window.close()
            window.shutdown()
            plane.wait_idle(60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", type=Path, default=ROOT / "docs")
    parser.add_argument("--only", default=",".join(SHOTS), help="comma-separated: " + ",".join(SHOTS))
    args = parser.parse_args(argv)
    which = {name.strip() for name in args.only.split(",") if name.strip()}
    unknown = which - set(SHOTS)
    if unknown:
        parser.error(f"unknown screenshot(s): {', '.join(sorted(unknown))}")
    out_dir = args.out_dir.resolve()
    if which & {"speakers", "search"}:
        library_shots(out_dir, which)
    if "modal" in which:
        if which == {"modal"}:
            modal_shot(out_dir)
        else:  # its own process: a fresh environment for modal, which reads its config at import
            child = [sys.executable, "-m", "bench.screenshot_features", str(out_dir), "--only", "modal"]
            return subprocess.run(child, cwd=ROOT).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())

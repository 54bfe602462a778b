"""The live window's screenshot, taken from the real X display (run under Xvfb) while it transcribes speech.

    xvfb-run -a -s "-screen 0 1400x900x24" env QT_QPA_PLATFORM=xcb .venv/bin/python -m bench.screenshot_live docs/screenshot-live.png

A new user's library in a temporary folder. The sound is real: tests/sound_server.py's SoundServer (a PulseAudio
daemon of this script's own, with a null sink and a remap source of its monitor that Qt lists as an input; this
bench script imports it from tests/ through sys.path, as bench/screenshot_features.py does the Modal plane)
plays ../shared/audio/jfk.flac (a WAV copy, tests/sound_server.py's wav_copy) into the sink in real time. The app
opens Live > Transcribe an audio input... (MainWindow.open_live), picks that input ("Remapped Monitor", as
tests/test_live_window.py does) and presses Start; words are transcribed on this computer (bundled tiny.en).
The live window alone is read back from the X server (QScreen.grabWindow) at the first steady moment from 9.5 s
into jfk (EARLIEST_S) with final words and words that may still change (grey italics); if none comes, with the
final words alone 3 s after it ended. The picture shows the chosen input and the status line (seconds heard, lag). Nothing on the screen is painted by this script.

The window runs in a child process (this module with --window): Qt connects to a sound server once per process,
so the child starts with the sound server's environment. The parent starts and stops the server.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT.parent / "shared" / "audio"
INPUT = "Remapped Monitor"  # the sound server's remap source, as Qt describes it (tests/test_live_window.py)
WINDOW_SIZE = (1300, 820)
LIVE_SIZE = (860, 300)
EARLIEST_S = 9.5  # seconds into jfk (11 s) before the picture: "…ask not what your country can do for you" said
AFTER_END_S = 3.0  # the picture is taken by then at the latest (with the final words only, if no others show)
STEADY_MS = 250  # the text unchanged this long before the grab: what the state says is what was painted
MODEL_TIMEOUT_S = 300  # tiny.en loading on a busy two-core machine
CHILD_TIMEOUT_S = 900


def main(out: Path) -> int:
    """Start the sound server, run the window in a child process with its environment, stop the server."""
    sys.path.insert(0, str(ROOT / "tests"))
    from sound_server import SoundServer, pulseaudio_missing, wav_copy

    problem = pulseaudio_missing()
    if problem is not None:
        print(f"no sound server: {problem}", file=sys.stderr)
        return 2
    from bench.screenshot_features import new_user_home  # the same new user as the other screenshots

    home = new_user_home()
    wav = wav_copy(AUDIO / "jfk.flac", home)
    out = out.resolve()
    started = time.monotonic()
    with SoundServer(home / "pulse") as server:  # its env: this home's XDG folders, the server's socket
        child = [sys.executable, "-m", "bench.screenshot_live", "--window", str(out), str(wav)]
        run = subprocess.run(child, env={**server.env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=CHILD_TIMEOUT_S)
    print(f"took {time.monotonic() - started:.0f} s")
    return run.returncode


def window_shot(out: Path, wav: Path) -> int:
    """In the child: the app on the X display, its live window capturing the sound server while jfk plays."""
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from bench.qt_wait import run_for, wait_until
    from gui.main_window import MainWindow
    from gui.settings import APPLICATION, ORGANIZATION, settings_store
    from sound_server import SINK

    app = QApplication.instance() or QApplication(["whisper-desk"])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    store = settings_store()
    store.setValue("offered_modal_setup", True)  # no first-start banner
    store.sync()
    window = MainWindow()
    window.resize(*WINDOW_SIZE)
    window.show()
    player: subprocess.Popen[bytes] | None = None
    try:
        window.open_live()  # Live > Transcribe an audio input…
        live = window.live_window
        live.resize(*LIVE_SIZE)
        live.move(200, 160)
        wait_until(lambda: live.device_combo.count() > 0, 60, "listing the inputs")
        if not live.choose_input(INPUT):
            names = [live.device_combo.itemText(i) for i in range(live.device_combo.count())]
            raise RuntimeError(f"no input named {INPUT!r} in {names}")
        live.start()  # as the Start button does
        wait_until(lambda: live.session is not None and live.session.seconds > 0.5, 60, "sound from the input")
        wait_until(lambda: live.session is not None and live.session.stream.transcriber is not None, MODEL_TIMEOUT_S,
                   "loading the model")
        duration = player_s(wav)
        player = subprocess.Popen(["paplay", f"--device={SINK}", str(wav)])
        playing_since = time.monotonic()

        def state() -> tuple[str, tuple, str]:
            return live.final_text, live.tentative, live.status_label.text()

        last, steady_since = state(), time.monotonic()
        while True:  # the first steady moment, once a few seconds are said, with final and tentative words
            run_for(50)
            now = time.monotonic()
            if state() != last:
                last, steady_since = state(), now
                continue
            played = now - playing_since
            ended = player.poll() is not None
            painted = (now - steady_since) * 1000 >= STEADY_MS
            final_words = len(live.final_text.split())
            if painted and played >= EARLIEST_S and final_words >= 3 and live.tentative:
                break
            if ended and painted and final_words >= 3 and played >= duration + AFTER_END_S:
                break  # no tentative words at a steady moment: the final ones alone
            if played > duration + 120:
                raise TimeoutError(f"no words on the screen {played:.0f} s after jfk began: {live.status_label.text()!r}")
        shot = QGuiApplication.primaryScreen().grabWindow(live.winId())
        out.parent.mkdir(parents=True, exist_ok=True)
        if shot.isNull() or not shot.save(str(out)):
            raise OSError(f"could not write {out}")
        print(json.dumps({"out": str(out), "played_s": round(played, 1), "input": live.device_combo.currentText(),
                          "final": live.final_text.strip(), "tentative": "".join(w[2] for w in live.tentative).strip(),
                          "status": live.status_label.text(), "size": [shot.width(), shot.height()]}))
        player.wait(60)
    finally:
        if player is not None and player.poll() is None:
            player.terminate()
            player.wait(10)
        window.close()
        window.shutdown()  # the live window stops and saves the recording as a job, in the temporary library
    print(f"wrote {out}")
    return 0


def player_s(wav: Path) -> float:
    import soundfile

    return float(soundfile.info(str(wav)).duration)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=ROOT / "docs" / "screenshot-live.png")
    parser.add_argument("wav", nargs="?", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--window", action="store_true", help=argparse.SUPPRESS)  # the child (see above)
    args = parser.parse_args()
    if args.window:
        sys.path.insert(0, str(ROOT / "tests"))
        sys.exit(window_shot(args.out, args.wav))
    sys.exit(main(args.out))

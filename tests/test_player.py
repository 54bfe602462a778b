"""Playback: the playhead advances with and without an audio device, the editor's highlight follows it, and no
call into the player ever holds the GUI thread: each call below goes through a watchdog (sound_server.guarded)
that fails the test past one second, and ends the run with every thread's stack if a call never returns.

Without a sound server (CI): these tests in this process. With one: a PulseAudio server of the test's own, and a
child process (this file run as a script: Qt connects to a sound server once per process) that plays into its
null sink, records the sink's monitor, changes stop/seek/source in quick succession, then loses the device and
the server mid-play."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
from editor_fixtures import jfk_transcript
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QVBoxLayout, QWidget
from sound_server import CALL_LIMIT_S, SoundServer, guarded, pulseaudio_missing

from gui.editor import TranscriptEditor
from gui.player import Player

ROOT = Path(__file__).resolve().parent.parent
SCENARIO_TIMEOUT_S = 120


@pytest.fixture
def window(qtbot):
    """A window holding an editor and a player wired as the main window does; the player is guarded."""
    host = QWidget()
    qtbot.addWidget(host)
    editor = TranscriptEditor(host)
    player = Player(host)
    layout = QVBoxLayout(host)
    layout.addWidget(editor)
    layout.addWidget(player)
    editor.set_transcript(jfk_transcript())
    player.positionChanged.connect(editor.highlight_time)
    editor.segmentActivated.connect(player.play_from)
    host.resize(800, 400)
    host.show()
    qtbot.waitExposed(host)
    host.activateWindow()
    safe = guarded(player)
    yield host, editor, safe
    safe.stop()


def test_playback_advances_and_moves_the_highlight(qtbot, window, jfk):
    _host, editor, player = window
    segments = jfk_transcript().segments
    player.play_from(jfk, 2.0)
    qtbot.waitUntil(lambda: player.position() >= 2.4, timeout=8000)
    assert player.is_playing
    assert player.position() < 8.0  # it started at 2 s, not at 0
    assert editor.highlighted_row == 0 and segments[0].start <= player.position() < segments[0].end

    # across a segment boundary the highlight moves to the next segment
    player.play_from(segments[1].start - 0.3)
    qtbot.waitUntil(lambda: editor.highlighted_row == 1, timeout=8000)
    assert player.position() >= segments[1].start
    assert player.slider.value() >= int(segments[1].start * 1000) - 200


def test_clicking_a_segment_plays_from_its_start(qtbot, window, jfk):
    _host, editor, player = window
    player.set_source(jfk)
    second = jfk_transcript().segments[1]
    editor.segmentActivated.emit(second.start)
    qtbot.waitUntil(lambda: player.position() > second.start + 0.2, timeout=8000)
    assert editor.highlighted_row == 1


def test_pause_skip_and_speed(qtbot, window, jfk):
    _host, _editor, player = window
    player.play_from(jfk, 1.0)
    qtbot.waitUntil(lambda: player.position() > 1.1, timeout=8000)
    player.toggle()
    qtbot.waitUntil(lambda: not player.is_playing, timeout=3000)
    paused_at = player.position()
    player.skip(5.0)
    qtbot.waitUntil(lambda: abs(player.position() - (paused_at + 5.0)) < 0.3, timeout=3000)
    player.skip(-20.0)
    qtbot.waitUntil(lambda: player.position() < 0.3, timeout=3000)
    player.set_speed(2.0)
    assert player.speed() == 2.0 and player.speed_combo.currentText() == "2×"
    player.speed_combo.setCurrentIndex(0)
    assert player.speed() == 0.5

    # at 2x the playhead moves twice as fast as the clock on the wall
    player.set_speed(2.0)
    player.play_from(1.0)
    started = time.monotonic()
    qtbot.waitUntil(lambda: player.position() >= 3.0, timeout=5000)
    assert time.monotonic() - started < 1.6


def test_playing_to_the_end_stops_there_and_plays_again_from_the_start(qtbot, window, jfk):
    _host, _editor, player = window
    player.set_source(jfk)
    qtbot.waitUntil(lambda: player.duration() is not None, timeout=5000)
    assert player.duration() == pytest.approx(11.0, abs=0.05)
    player.play_from(player.duration() - 0.4)
    qtbot.waitUntil(lambda: not player.is_playing, timeout=5000)
    assert player.position() == pytest.approx(11.0, abs=0.05)
    assert player.time_label.text() == "00:11.0 / 00:11.0"
    player.play()
    qtbot.waitUntil(lambda: 0.2 < player.position() < 2.0, timeout=5000)


def test_keyboard_shortcuts_and_space_while_typing(qtbot, window, jfk):
    host, editor, player = window
    player.set_source(jfk)
    editor.view.setFocus()
    qtbot.keyClick(editor.view, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: player.is_playing and player.position() > 0.1, timeout=5000)
    qtbot.keyClick(editor.view, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: not player.is_playing, timeout=3000)
    before = player.position()
    qtbot.keyClick(editor.view, Qt.Key.Key_Right, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: player.position() >= before + 4.9, timeout=3000)
    qtbot.keyClick(editor.view, Qt.Key.Key_Left, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: player.position() <= before + 0.1, timeout=3000)

    # typing a space in a text box types it, and does not start playback
    box = QLineEdit(host)
    host.layout().addWidget(box)
    box.show()
    box.setFocus()
    qtbot.keyClicks(box, "a b")
    assert box.text() == "a b"
    assert not player.is_playing


def test_a_file_that_is_not_audio_reports_an_error(qtbot, tmp_path):
    raw = Player()
    qtbot.addWidget(raw)
    player = guarded(raw)
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all, just text here")
    with qtbot.waitSignal(raw.errorOccurred, timeout=5000) as blocker:
        player.play_from(bad, 0.0)
    assert blocker.args[0].startswith("notes.wav: cannot be played") and "\n" not in blocker.args[0]
    assert not player.is_playing
    with qtbot.waitSignal(raw.errorOccurred, timeout=5000) as blocker:
        player.play_from(tmp_path / "gone.flac", 3.0)
    assert blocker.args[0].startswith("gone.flac: cannot be played")


def quick_succession(player, files: list[Path], steps: int, seed: int) -> None:
    """Stop, seek, source changes, play and speed in quick succession, as a user clicking around does."""
    chooser = random.Random(seed)
    for _ in range(steps):
        action = chooser.randrange(7)
        if action == 0:
            player.set_source(chooser.choice(files))
        elif action == 1:
            player.seek(chooser.uniform(0, 12))
        elif action == 2:
            player.play()
        elif action == 3:
            player.stop()
        elif action == 4:
            player.pause()
        elif action == 5:
            player.set_speed(chooser.choice((0.5, 1.0, 2.0)))
        else:
            player.play_from(chooser.choice(files), chooser.uniform(0, 10))


def test_stop_seek_and_source_changes_in_quick_succession_never_block(qtbot, window, jfk, shared_audio):
    _host, _editor, player = window
    files = [jfk, shared_audio / "stereo_diarization.wav", shared_audio / "hotwords.mp3"]
    for round_ in range(3):
        quick_succession(player, files, steps=80, seed=round_)
        qtbot.wait(50)  # measurements and the audio thread catch up between bursts
    player.set_speed(1.0)
    player.play_from(jfk, 2.0)
    qtbot.waitUntil(lambda: player.is_playing and player.duration() == pytest.approx(11.0, abs=0.05), timeout=5000)
    qtbot.waitUntil(lambda: player.position() >= 2.5, timeout=5000)
    assert player.slowest < CALL_LIMIT_S
    player.stop()
    assert player.position() == 0.0 and not player.is_playing


def test_deleting_a_playing_player_returns_at_once(qtbot, jfk):
    raw = Player()
    player = guarded(raw)
    player.play_from(jfk, 0.0)
    qtbot.waitUntil(lambda: player.position() > 0.3, timeout=5000)
    started = time.monotonic()
    raw.deleteLater()
    qtbot.wait(100)
    assert time.monotonic() - started < CALL_LIMIT_S
    qtbot.waitUntil(lambda: not raw.audio.alive, timeout=5000)  # its audio thread ends by itself


# --- with a sound server -------------------------------------------------------------------------------------


@pytest.mark.skipif(pulseaudio_missing() is not None, reason=str(pulseaudio_missing()))
def test_with_a_sound_server_it_sounds_and_survives_losing_the_device_and_the_server(tmp_path, jfk, shared_audio):
    server = SoundServer(tmp_path / "pulse").start()
    try:
        env = {**server.env, "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": "offscreen"}
        run = subprocess.run([sys.executable, __file__, str(jfk), str(shared_audio), str(server.process.pid)],
                             env=env, capture_output=True, text=True, timeout=SCENARIO_TIMEOUT_S, cwd=ROOT)
    finally:
        server.stop()
    assert run.returncode == 0, run.stderr[-4000:]
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen["device"]  # Qt found the null sink
    # the sound reached the device: the sink's monitor heard jfk's speech while the playhead moved
    assert seen["sounding"] and seen["loud_windows"] >= 2, seen["windows"]
    assert seen["position_after_3s"] >= 2.5
    assert seen["after_quick_succession"]["sounding"] and 2.4 <= seen["after_quick_succession"]["position"] < 4.5
    # the device is unplugged mid-play: the playhead goes on, silently
    assert seen["device_gone"]["moved"] >= 0.8
    # the server dies mid-play: the same
    assert seen["server_gone"]["moved"] >= 0.8
    assert seen["slowest_call"] < CALL_LIMIT_S


def _scenario(jfk: Path, audio: Path, server_pid: int) -> dict:
    """Run in a child process whose environment points at the test's sound server (see the test above)."""
    import numpy as np
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])  # noqa: F841 - the player needs an application

    def wait(seconds: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(seconds * 1000), loop.quit)
        loop.exec()

    def wait_until(check, seconds: float = 5.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():
                return True
            wait(0.05)
        return check()

    raw = Player()
    player = guarded(raw)
    seen: dict = {}
    heard_file = Path(os.environ["XDG_RUNTIME_DIR"]) / "heard.raw"  # a file, not a pipe: a full pipe drops sound
    recorder = subprocess.Popen(["parec", "--device=whisper_desk_sink.monitor", "--format=s16le", "--rate=16000",
                                 "--channels=1", "--latency-msec=50"], stdout=heard_file.open("wb"))
    player.play_from(jfk, 0.0)
    seen["sounding"] = wait_until(lambda: player.sounding)
    seen["device"] = raw.audio.device_name
    wait(3.0)
    seen["position_after_3s"] = player.position()
    player.pause()
    wait(1.0)  # what was queued in the device reaches the monitor
    recorder.terminate()
    recorder.wait(5)
    heard = np.fromfile(heard_file, dtype=np.int16).astype(np.float64)
    windows = [float(np.sqrt(np.mean(heard[i : i + 8000] ** 2))) for i in range(0, len(heard) - 8000, 8000)]
    seen["loud_windows"] = sum(rms > 1000 for rms in windows)
    seen["windows"] = [round(rms) for rms in windows]

    quick_succession(player, [jfk, audio / "stereo_diarization.wav", audio / "hotwords.mp3"], steps=150, seed=7)
    player.set_speed(1.0)
    player.play_from(jfk, 2.0)
    wait_until(lambda: player.position() > 2.4 and player.sounding)
    seen["after_quick_succession"] = {"sounding": player.sounding, "position": player.position()}

    subprocess.run(["pactl", "unload-module", "module-remap-source"], timeout=10)
    subprocess.run(["pactl", "unload-module", "module-null-sink"], timeout=10)
    before = player.position()
    wait(1.5)
    seen["device_gone"] = {"moved": player.position() - before, "sounding": player.sounding}
    player.stop()
    player.play_from(jfk, 1.0)
    wait(0.5)
    os.kill(server_pid, 9)
    before = player.position()
    wait(1.5)
    seen["server_gone"] = {"moved": player.position() - before}
    quick_succession(player, [jfk], steps=40, seed=8)
    player.stop()
    seen["slowest_call"] = player.slowest
    return seen


if __name__ == "__main__":
    print(json.dumps(_scenario(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))))

"""Playback offscreen, without an audio device: the position really advances (QtMultimedia's FFmpeg
backend plays into no sink), and the editor's highlight follows the playhead."""

from __future__ import annotations

import pytest
from editor_fixtures import jfk_transcript
from PySide6.QtCore import Qt
from PySide6.QtMultimedia import QMediaPlayer
from PySide6.QtWidgets import QLineEdit, QVBoxLayout, QWidget

from gui.editor import TranscriptEditor
from gui.player import Player


@pytest.fixture
def window(qtbot):
    """A window holding an editor and a player wired as the main window does."""
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
    yield host, editor, player
    player.stop()


def test_playback_advances_and_moves_the_highlight(qtbot, window, jfk):
    _host, editor, player = window
    segments = jfk_transcript().segments
    player.play_from(jfk, 2.0)
    qtbot.waitUntil(lambda: player.position() >= 2.4, timeout=8000)
    assert player.media.playbackState() == QMediaPlayer.PlaybackState.PlayingState
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


def test_keyboard_shortcuts_and_space_while_typing(qtbot, window, jfk):
    host, editor, player = window
    player.set_source(jfk)
    editor.view.setFocus()
    qtbot.keyClick(editor.view, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: player.media.playbackState() == QMediaPlayer.PlaybackState.PlayingState, timeout=5000)
    qtbot.keyClick(editor.view, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: player.media.playbackState() == QMediaPlayer.PlaybackState.PausedState, timeout=3000)
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
    assert player.media.playbackState() != QMediaPlayer.PlaybackState.PlayingState


def test_a_file_that_is_not_audio_reports_an_error(qtbot, tmp_path):
    player = Player()
    qtbot.addWidget(player)
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio at all, just text here")
    with qtbot.waitSignal(player.errorOccurred, timeout=5000) as blocker:
        player.play_from(bad, 0.0)
    assert blocker.args[0].startswith("notes.wav: cannot be played") and "\n" not in blocker.args[0]
    assert not player.is_playing
    with qtbot.waitSignal(player.errorOccurred, timeout=5000) as blocker:
        player.play_from(tmp_path / "gone.flac", 3.0)
    assert blocker.args[0].startswith("gone.flac: cannot be played")

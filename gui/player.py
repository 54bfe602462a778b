"""Playback of a job's audio with QtMultimedia (FFmpeg backend): play/pause, position, speed.

Player(parent=None, shortcut_host=None)
    play_from(seconds) or play_from(path, seconds); set_source(path); play(); pause(); toggle(); stop();
    skip(delta_s); set_speed(rate); position() -> seconds
    signals: positionChanged(float seconds) (connect to TranscriptEditor.highlight_time),
             playingChanged(bool), errorOccurred(str)
Shortcuts on `shortcut_host` (default: the parent, else the player): Space play/pause (not while typing),
Ctrl+Left / Ctrl+Right skip 5 s back / forward. It plays without an audio device (position still advances).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtMultimedia import QAudioOutput, QMediaPlayer
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSlider,
    QTextEdit,
    QToolButton,
    QWidget,
)

from gui.icons import icon
from worker.transcripts.editing import format_timestamp

SPEEDS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
SKIP_S = 5.0


def _clock(seconds: float) -> str:
    text = format_timestamp(seconds)[:-2]  # HH:MM:SS.m
    return text[3:] if text.startswith("00:") else text


class Player(QWidget):
    positionChanged = Signal(float)  # seconds
    playingChanged = Signal(bool)
    errorOccurred = Signal(str)

    def __init__(self, parent: QWidget | None = None, shortcut_host: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("player")
        self.source: Path | None = None
        self._pending_seek: float | None = None
        self._play_when_loaded = False
        self._slider_held = False

        self.media = QMediaPlayer(self)
        self.audio = QAudioOutput(self)
        self.media.setAudioOutput(self.audio)
        self.media.positionChanged.connect(self._position_changed)
        self.media.durationChanged.connect(self._duration_changed)
        self.media.mediaStatusChanged.connect(self._status_changed)
        self.media.playbackStateChanged.connect(self._state_changed)
        self.media.errorOccurred.connect(self._error)

        self.play_button = QToolButton(self)
        self.play_button.setObjectName("playButton")
        self.play_button.clicked.connect(self.toggle)
        self.slider = QSlider(Qt.Orientation.Horizontal, self)
        self.slider.setObjectName("positionSlider")
        self.slider.setRange(0, 0)
        self.slider.sliderPressed.connect(lambda: setattr(self, "_slider_held", True))
        self.slider.sliderReleased.connect(self._slider_released)
        self.time_label = QLabel(self._time_text(0.0), self)
        self.slider.sliderMoved.connect(lambda ms: self.time_label.setText(self._time_text(ms / 1000)))
        self.speed_combo = QComboBox(self)
        self.speed_combo.setObjectName("speedCombo")
        self.speed_combo.setToolTip("Playback speed")
        for speed in SPEEDS:
            self.speed_combo.addItem(f"{speed:g}×", speed)
        self.speed_combo.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_combo.currentIndexChanged.connect(lambda i: self.media.setPlaybackRate(float(self.speed_combo.itemData(i))))

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.play_button)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.time_label)
        layout.addWidget(self.speed_combo)

        host = shortcut_host or parent or self
        self.shortcuts = []
        for keys, slot in (("Space", self._space), ("Ctrl+Left", lambda: self.skip(-SKIP_S)), ("Ctrl+Right", lambda: self.skip(SKIP_S))):
            shortcut = QShortcut(QKeySequence(keys), host)
            shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
            shortcut.activated.connect(slot)
            shortcut.setEnabled(False)  # until there is something to play
            self.shortcuts.append(shortcut)
        self._state_changed(self.media.playbackState())
        self.setEnabled(False)

    # --- control --------------------------------------------------------------------------------------

    def set_source(self, path: str | Path) -> None:
        path = Path(path)
        if self.source == path:
            return
        self.source = path
        self._pending_seek = None
        self.media.setSource(QUrl.fromLocalFile(str(path)))
        self.setEnabled(True)
        for shortcut in self.shortcuts:
            shortcut.setEnabled(True)

    def play_from(self, path_or_seconds: str | Path | float, seconds: float | None = None) -> None:
        """Play from `seconds`: play_from(12.5) in the current file, or play_from(path, 12.5)."""
        if isinstance(path_or_seconds, (int, float)) and seconds is None:
            seconds = float(path_or_seconds)
        else:
            self.set_source(path_or_seconds)  # type: ignore[arg-type]
        if self.source is None:
            return
        self.seek(seconds or 0.0)
        self.play()

    def seek(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        if self._loaded():
            self.media.setPosition(int(seconds * 1000))
        else:
            self._pending_seek = seconds  # applied once the media is loaded (earlier seeks are ignored)

    def play(self) -> None:
        if self.source is None:
            return
        if self._loaded():
            if self.media.mediaStatus() == QMediaPlayer.MediaStatus.EndOfMedia and self._pending_seek is None:
                self.media.setPosition(0)
            self.media.play()
        else:
            self._play_when_loaded = True

    def pause(self) -> None:
        self._play_when_loaded = False
        self.media.pause()

    def toggle(self) -> None:
        if self.is_playing:
            self.pause()
        else:
            self.play()

    def stop(self) -> None:
        self._play_when_loaded = False
        self.media.stop()

    def skip(self, delta_s: float) -> None:
        if self.source is not None:
            duration = self.media.duration() / 1000 if self.media.duration() > 0 else None
            target = self.position() + delta_s
            self.seek(min(target, duration) if duration is not None else target)

    def set_speed(self, rate: float) -> None:
        """Playback rate (0.5–2.0), shown in the speed box."""
        index = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - rate))
        self.speed_combo.setCurrentIndex(index)
        self.media.setPlaybackRate(SPEEDS[index])

    def speed(self) -> float:
        return self.media.playbackRate()

    def position(self) -> float:
        if self._pending_seek is not None:
            return self._pending_seek
        return self.media.position() / 1000

    @property
    def is_playing(self) -> bool:
        return self.media.playbackState() == QMediaPlayer.PlaybackState.PlayingState or self._play_when_loaded

    # --- media events ---------------------------------------------------------------------------------

    def _loaded(self) -> bool:
        return self.media.mediaStatus() in (
            QMediaPlayer.MediaStatus.LoadedMedia, QMediaPlayer.MediaStatus.BufferingMedia,
            QMediaPlayer.MediaStatus.BufferedMedia, QMediaPlayer.MediaStatus.EndOfMedia,
            QMediaPlayer.MediaStatus.StalledMedia)

    def _status_changed(self, status: QMediaPlayer.MediaStatus) -> None:
        if status == QMediaPlayer.MediaStatus.InvalidMedia:
            self._play_when_loaded = False
            return
        if not self._loaded():
            return
        if self._pending_seek is not None:
            seconds, self._pending_seek = self._pending_seek, None
            self.media.setPosition(int(seconds * 1000))
        if self._play_when_loaded:
            self._play_when_loaded = False
            self.media.play()

    def _position_changed(self, ms: int) -> None:
        if not self._slider_held:
            self.slider.setValue(ms)
            self.time_label.setText(self._time_text(ms / 1000))
        self.positionChanged.emit(ms / 1000)

    def _duration_changed(self, ms: int) -> None:
        self.slider.setRange(0, max(0, ms))
        self.time_label.setText(self._time_text(self.position()))

    def _time_text(self, seconds: float) -> str:
        duration = max(0, self.media.duration()) / 1000 if hasattr(self, "media") else 0.0
        return f"{_clock(seconds)} / {_clock(duration)}"

    def _slider_released(self) -> None:
        self._slider_held = False
        self.seek(self.slider.value() / 1000)

    def _state_changed(self, state: QMediaPlayer.PlaybackState) -> None:
        playing = state == QMediaPlayer.PlaybackState.PlayingState
        self.play_button.setText("Pause" if playing else "Play")
        self.play_button.setToolTip(("Pause" if playing else "Play") + " (Space)")
        self.play_button.setIcon(icon("pause" if playing else "start"))
        self.playingChanged.emit(playing)

    def _error(self, _error: QMediaPlayer.Error, message: str) -> None:
        name = self.source.name if self.source is not None else "audio"
        self.errorOccurred.emit(f"{name}: cannot be played ({message or 'unsupported media'})")

    def _space(self) -> None:
        focus = QApplication.focusWidget()
        if isinstance(focus, (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)):
            return  # typing: a text box gets its space (these normally take the key before the shortcut)
        self.toggle()

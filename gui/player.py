"""Playback of a job's audio: play/pause, position, speed. No call into it ever waits on the audio system.

Player(parent=None, shortcut_host=None)
    play_from(seconds) or play_from(path, seconds); set_source(path); play(); pause(); toggle(); stop();
    skip(delta_s); seek(seconds); set_speed(rate); position() -> seconds; duration() -> seconds
    signals: positionChanged(float seconds) (connect to TranscriptEditor.highlight_time),
             playingChanged(bool), errorOccurred(str)
Shortcuts on `shortcut_host` (default: the parent, else the player): Space play/pause (not while typing),
Ctrl+Left / Ctrl+Right skip 5 s back / forward. It plays without an audio device (position still advances).

Why not QMediaPlayer: with Qt's FFmpeg media plugin (PySide6 6.11), QMediaPlayer.stop(), setSource() and the
player's destructor tear the plugin's playback engine down from the calling thread: its demuxer, decoders and
renderers each live on a thread of their own, and the caller disconnects them and waits for those threads
(PlaybackEngine::deleteFreeThreads quits and waits each one). When one of them is itself waiting (the audio
renderer on its audio sink, a queued call back to the GUI thread) the caller waits for good: that is the hang CI
saw in QObject::disconnect under load, with no sound server. So the GUI thread never calls into a media
backend here:

- the clock is the GUI thread's own (a monotonic clock and a timer): position, end of media, seeking and speed
  never ask the audio system anything;
- the file is checked and measured (worker.media.audio.probe_duration) on a short-lived thread;
- the sound itself is decoded by PyAV and written to a QAudioSink on the player's own audio thread, told what
  to play through a queue (the newest command wins, so stop/seek/source changes in quick succession collapse).
  With no output device, or when the device goes away, the audio thread plays nothing and the clock goes on.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
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
from worker.core.errors import MediaError
from worker.transcripts.editing import format_timestamp

log = logging.getLogger(__name__)

SPEEDS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
SKIP_S = 5.0
TICK_MS = 40  # how often the playhead moves while playing
SINK_BUFFER_S = 0.25  # sound queued ahead in the audio device
COMMAND_POLL_S = 0.02  # the audio thread's wait for a command while it plays
BURST_S = 0.15  # commands this close together are one burst: only its last is acted on


def _clock(seconds: float) -> str:
    text = format_timestamp(seconds)[:-2]  # HH:MM:SS.m
    return text[3:] if text.startswith("00:") else text


# --- the sound server Qt is connected to -----------------------------------------------------------------------


class SoundServerWatch:
    """Whether Qt's connection to the PulseAudio server can still be used.

    Qt 6.11's PulseAudio backend connects once per process and never reconnects: once the server it connected to
    has gone (crashed, killed, restarted), creating a QAudioSink or QAudioSource aborts the whole process
    (libpulse: "Assertion 'c' failed ... pa_context_get_state()"). So before each one, the server's socket is
    checked: still there, still the same file (a restarted server makes a new one), and accepting connections.
    Once the server is lost, sound stays off for this process (the playhead still moves; capture says so).
    Other backends (PipeWire, macOS, Windows) are not checked."""

    def __init__(self) -> None:
        self._identity: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self.lost = False

    def usable(self) -> bool:
        path = self._pulse_socket()
        if path is None:
            return True
        try:
            info = path.stat()
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.5)
                probe.connect(str(path))
        except OSError:
            with self._lock:
                self.lost = self.lost or self._identity is not None
            return False
        with self._lock:
            identity = (info.st_dev, info.st_ino)
            if self._identity is None:
                self._identity = identity
            elif identity != self._identity:
                self.lost = True
            return not self.lost

    @staticmethod
    def _pulse_socket() -> Path | None:
        """The socket of the PulseAudio server Qt talks to; None where Qt does not use PulseAudio."""
        if not sys.platform.startswith("linux") or ctypes.util.find_library("pipewire-0.3"):
            return None  # Qt prefers its PipeWire backend where the library is there
        server = os.environ.get("PULSE_SERVER", "")
        if server:
            address = server.split()[0].removeprefix("unix:")
            return Path(address) if address.startswith("/") else None  # a TCP server: not checked
        runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
        return Path(runtime) / "pulse" / "native"


SOUND_SERVER = SoundServerWatch()  # one per process, as Qt's connection is


# --- the audio thread: sound out, never waited on ------------------------------------------------------------


@dataclass(frozen=True)
class _Play:
    path: Path
    seconds: float
    rate: float


@dataclass(frozen=True)
class _Silence:
    """Pause, stop, another file: nothing plays until the next _Play."""


@dataclass(frozen=True)
class _Quit:
    pass


class AudioOut:
    """A daemon thread that writes PyAV's decode of a file to the default output device (QAudioSink).

    play(path, seconds, rate) and silence() return at once; the thread takes the newest command. Nothing joins
    the thread: close() asks it to end, and a thread stuck in the audio system is left behind rather than
    waited for. `sounding` says whether a device is being written to (False without one)."""

    def __init__(self) -> None:
        self._commands: queue.SimpleQueue[_Play | _Silence | _Quit] = queue.SimpleQueue()
        self.sounding = False
        self.device_name: str | None = None
        self._thread = threading.Thread(target=self._run, name="player-audio", daemon=True)
        self._thread.start()

    def play(self, path: Path, seconds: float, rate: float) -> None:
        self._commands.put(_Play(path, seconds, rate))

    def silence(self) -> None:
        self._commands.put(_Silence())

    def close(self) -> None:
        self._commands.put(_Quit())

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- in the audio thread ---

    def _run(self) -> None:
        from PySide6.QtCore import QEventLoop

        events = QEventLoop()  # the sink's own notifications are delivered in this thread
        stream: _SinkStream | None = None
        try:
            while True:
                command = self._newest(COMMAND_POLL_S if stream is not None else None)
                if command is not None:
                    if stream is not None:
                        stream.close()
                        stream = None
                        self.sounding = False
                    if isinstance(command, _Quit):
                        return
                    if isinstance(command, _Play):
                        stream = self._open(command)
                if stream is not None and not stream.feed():
                    stream.close()  # the end of the file, or the device went away: the clock goes on
                    stream = None
                    self.sounding = False
                events.processEvents()
        finally:
            if stream is not None:
                stream.close()
            self.sounding = False

    def _newest(self, timeout: float | None) -> _Play | _Silence | _Quit | None:
        try:
            command = self._commands.get(timeout=timeout) if timeout is None or timeout > 0 else None
        except queue.Empty:
            return None
        # a burst of commands (clicks, seeks, source changes): only the last counts (a quit always does), once
        # none has come for BURST_S. Each one acted on costs the audio system round trips that hold the GIL.
        while True:
            try:
                following = self._commands.get(timeout=BURST_S)
            except queue.Empty:
                return command
            command = command if isinstance(command, _Quit) else following

    def _open(self, command: _Play) -> _SinkStream | None:
        from PySide6.QtMultimedia import QMediaDevices

        if not SOUND_SERVER.usable():
            if SOUND_SERVER.lost and self.device_name is not None:
                log.warning("player: the sound server has gone; playing without sound until Whisper Desk restarts")
            self.device_name = None
            return None
        device = QMediaDevices.defaultAudioOutput()
        if device.isNull():
            self.device_name = None
            return None  # no output device: the clock plays on its own
        self.device_name = device.description()
        try:
            stream = _SinkStream(device, command)
        except (MediaError, OSError, ValueError) as exc:  # the probe reports bad files; here only logged
            log.info("player: no sound for %s (%s)", command.path.name, exc)
            return None
        self.sounding = True
        return stream


class _SinkStream:
    """One file from one position at one speed, decoded by PyAV and written to a QAudioSink as it drains."""

    def __init__(self, device: Any, command: _Play) -> None:
        import av
        from PySide6.QtMultimedia import QAudioFormat, QAudioSink

        preferred = device.preferredFormat()
        self.rate = preferred.sampleRate() if preferred.sampleRate() > 0 else 48000
        self.channels = 2 if preferred.channelCount() >= 2 else 1
        layout = "stereo" if self.channels == 2 else "mono"
        audio_format = QAudioFormat()
        audio_format.setSampleRate(self.rate)
        audio_format.setChannelCount(self.channels)
        audio_format.setSampleFormat(QAudioFormat.SampleFormat.Int16)

        try:
            self.container = av.open(str(command.path), metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise MediaError(command.path, f"cannot be opened ({exc})") from None
        streams = [s for s in self.container.streams if s.type == "audio"]
        if not streams:
            self.container.close()
            raise MediaError(command.path, "contains no audio")
        self.stream = streams[0]
        self.start_s = max(0.0, command.seconds)
        if self.start_s > 0 and self.stream.time_base:
            self.container.seek(int(self.start_s / self.stream.time_base), stream=self.stream)
        self.frames: Iterator[Any] = self.container.decode(self.stream)  # audio frames only
        self.resampler = av.AudioResampler(format="s16", layout=layout, rate=self.rate)
        self.tempo = _tempo_graph(layout, self.rate, command.rate) if abs(command.rate - 1.0) > 1e-3 else None
        self.pending = b""
        self.done = False

        self.sink = QAudioSink(device, audio_format)
        self.sink.setBufferSize(int(self.rate * self.channels * 2 * SINK_BUFFER_S))
        self.output = self.sink.start()  # push mode: written below as it has room

    def feed(self) -> bool:
        """Write what the device has room for; False once the file is played out or the device failed."""
        from PySide6.QtMultimedia import QtAudio

        if self.output is None or self.sink.error() != QtAudio.Error.NoError:
            return False
        room = self.sink.bytesFree()
        while room > 0:
            if not self.pending:
                if self.done:
                    return self.sink.state() == QtAudio.State.ActiveState  # the last buffer is still playing
                self.pending = self._next_bytes()
                continue
            written = self.output.write(self.pending[:room])
            if written <= 0:
                break
            self.pending = self.pending[written:]
            room -= written
        return True

    def _next_bytes(self) -> bytes:
        for frame in self.frames:
            if frame.pts is not None and frame.time_base is not None:  # after a seek: from the asked position
                start = float(frame.pts * frame.time_base)
                skip = int((self.start_s - start) * frame.sample_rate)
                if skip >= frame.samples:
                    continue
            else:
                skip = 0
            chunks = []
            for piece in self.resampler.resample(frame):
                data = piece.to_ndarray().tobytes()
                if skip > 0:
                    cut = min(len(data), int(skip * self.rate / frame.sample_rate) * self.channels * 2)
                    data, skip = data[cut:], 0
                chunks.append(self._tempo(piece, data))
            data = b"".join(chunks)
            if data:
                return data
        self.done = True
        return b""

    def _tempo(self, piece: Any, data: bytes) -> bytes:
        import av

        if self.tempo is None:
            return data
        self.tempo.push(piece)
        out = []
        while True:
            try:
                out.append(self.tempo.pull().to_ndarray().tobytes())
            except (av.error.BlockingIOError, av.error.EOFError):
                return b"".join(out)

    def close(self) -> None:
        try:
            self.sink.reset()  # drop what is queued (after suspend, a sink must be reset before it stops)
            self.sink.stop()
        finally:
            self.container.close()


def _tempo_graph(layout: str, rate: int, speed: float) -> Any:
    """FFmpeg's atempo: another speed at the same pitch."""
    from fractions import Fraction

    import av

    graph = av.filter.Graph()
    source = graph.add_abuffer(format="s16", sample_rate=rate, layout=layout, time_base=Fraction(1, rate))
    tempo = graph.add("atempo", f"{speed:g}")
    sink = graph.add("abuffersink")
    source.link_to(tempo)
    tempo.link_to(sink)
    graph.configure()
    return graph


# --- the file's length, measured off the GUI thread ----------------------------------------------------------


class _Probe(QObject):
    """probe_duration on one worker thread, newest request first (a file left before it was measured is never
    measured: many threads measuring at once would starve the GUI thread of the GIL); `measured(generation,
    seconds, error)` arrives in the GUI thread."""

    measured = Signal(int, float, str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._wanted: tuple[int, Path] | None = None
        self._wake = threading.Condition()
        self._closed = False
        threading.Thread(target=self._run, name="player-probe", daemon=True).start()

    def start(self, generation: int, path: Path) -> None:
        with self._wake:
            self._wanted = (generation, path)
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()

    def _run(self) -> None:
        from worker.media.audio import probe_duration

        while True:
            with self._wake:
                while self._wanted is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                assert self._wanted is not None
                (generation, path), self._wanted = self._wanted, None
            try:
                seconds, problem = probe_duration(path), ""
            except MediaError as exc:
                seconds, problem = 0.0, exc.reason
            try:
                self.measured.emit(generation, seconds, problem)
            except RuntimeError:  # the player was deleted while the file was measured: nobody to tell
                log.debug("player: %s measured after its player was deleted", path.name)
                return


# --- the widget ----------------------------------------------------------------------------------------------


class Player(QWidget):
    positionChanged = Signal(float)  # seconds
    playingChanged = Signal(bool)
    errorOccurred = Signal(str)

    def __init__(self, parent: QWidget | None = None, shortcut_host: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("player")
        self.source: Path | None = None
        self._duration: float | None = None  # None until the file is measured
        self._generation = 0  # a measurement of an earlier file is ignored
        self._at = 0.0  # the position when the clock last started or stopped
        self._since: float | None = None  # monotonic time the clock started (None: not playing)
        self._rate = 1.0
        self._play_when_loaded = False
        self._slider_held = False

        self.audio = AudioOut()
        self._probe = _Probe(self)
        audio, probe = self.audio, self._probe

        def end_threads(*_: object) -> None:
            audio.close()
            probe.close()

        self.destroyed.connect(end_threads)
        self._probe.measured.connect(self._measured)
        self._ticker = QTimer(self)
        self._ticker.setInterval(TICK_MS)
        self._ticker.timeout.connect(self._tick)

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
        self.speed_combo.currentIndexChanged.connect(lambda i: self._set_rate(float(self.speed_combo.itemData(i))))

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
        self._show_state(False)
        self.setEnabled(False)

    # --- control --------------------------------------------------------------------------------------

    def set_source(self, path: str | Path) -> None:
        path = Path(path)
        if self.source == path:
            return
        self._halt(0.0)
        self._play_when_loaded = False
        self.source, self._duration = path, None
        self._generation += 1
        self._probe.start(self._generation, path)
        self.slider.setRange(0, 0)
        self.time_label.setText(self._time_text(0.0))
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
        if self._duration is not None:
            seconds = min(seconds, self._duration)
        playing = self._since is not None
        self._at, self._since = seconds, (time.monotonic() if playing else None)
        if playing:
            self._sound()
        self._show_position(seconds)

    def play(self) -> None:
        if self.source is None or self._since is not None:
            return
        if self._duration is None:  # still being measured: plays once it is
            self._play_when_loaded = True
            return
        if self._at >= self._duration:  # at the end: from the start again
            self._at = 0.0
        self._since = time.monotonic()
        self._sound()
        self._ticker.start()
        self._show_state(True)

    def pause(self) -> None:
        self._play_when_loaded = False
        self._halt(self.position())

    def toggle(self) -> None:
        if self.is_playing:
            self.pause()
        else:
            self.play()

    def stop(self) -> None:
        self._play_when_loaded = False
        self._halt(0.0)

    def skip(self, delta_s: float) -> None:
        if self.source is not None:
            self.seek(self.position() + delta_s)

    def set_speed(self, rate: float) -> None:
        """Playback rate (0.5–2.0), shown in the speed box."""
        index = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - rate))
        self.speed_combo.setCurrentIndex(index)
        self._set_rate(SPEEDS[index])

    def speed(self) -> float:
        return self._rate

    def position(self) -> float:
        if self._since is None:
            return self._at
        moved = self._at + (time.monotonic() - self._since) * self._rate
        return min(moved, self._duration) if self._duration is not None else moved

    def duration(self) -> float | None:
        """The file's length in seconds; None while it is being measured, or when it cannot be played."""
        return self._duration

    @property
    def is_playing(self) -> bool:
        return self._since is not None or self._play_when_loaded

    @property
    def sounding(self) -> bool:
        """Whether the sound reaches an output device now (False without one: the playhead still moves)."""
        return self.audio.sounding

    # --- the clock ------------------------------------------------------------------------------------

    def _set_rate(self, rate: float) -> None:
        if rate == self._rate:
            return
        if self._since is not None:
            self._at, self._since = self.position(), time.monotonic()
        self._rate = rate
        if self._since is not None:
            self._sound()

    def _sound(self) -> None:
        if self.source is not None:
            self.audio.play(self.source, self._at, self._rate)

    def _halt(self, at: float) -> None:
        was_playing = self._since is not None
        self._at, self._since = at, None
        self._ticker.stop()
        self.audio.silence()
        self._show_position(at)
        if was_playing:
            self._show_state(False)

    def _tick(self) -> None:
        position = self.position()
        if self._duration is not None and position >= self._duration:
            self._halt(self._duration)  # the end: play() starts again from the beginning
            return
        self._show_position(position)

    def _measured(self, generation: int, seconds: float, problem: str) -> None:
        if generation != self._generation or self.source is None:
            return  # an earlier file's measurement
        if problem:
            self._play_when_loaded = False
            self.errorOccurred.emit(f"{self.source.name}: cannot be played ({problem})")
            return
        self._duration = seconds
        self.slider.setRange(0, int(seconds * 1000))
        self._at = min(self._at, seconds)
        self._show_position(self._at)
        if self._play_when_loaded:
            self._play_when_loaded = False
            self.play()

    # --- what is shown --------------------------------------------------------------------------------

    def _show_position(self, seconds: float) -> None:
        if not self._slider_held:
            self.slider.setValue(int(seconds * 1000))
            self.time_label.setText(self._time_text(seconds))
        self.positionChanged.emit(seconds)

    def _time_text(self, seconds: float) -> str:
        duration = getattr(self, "_duration", None) or 0.0
        return f"{_clock(seconds)} / {_clock(duration)}"

    def _slider_released(self) -> None:
        self._slider_held = False
        self.seek(self.slider.value() / 1000)

    def _show_state(self, playing: bool) -> None:
        self.play_button.setText("Pause" if playing else "Play")
        self.play_button.setToolTip(("Pause" if playing else "Play") + " (Space)")
        self.play_button.setIcon(icon("pause" if playing else "start"))
        self.playingChanged.emit(playing)

    def _space(self) -> None:
        focus = QApplication.focusWidget()
        if isinstance(focus, (QLineEdit, QTextEdit, QPlainTextEdit, QAbstractSpinBox)):
            return  # typing: a text box gets its space (these normally take the key before the shortcut)
        self.toggle()

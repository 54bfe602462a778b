"""Capture for the live window: an audio input read on a thread of its own, never on the GUI thread.

- Microphones and other inputs, as QtMultimedia lists them (QMediaDevices.audioInputs()), are read with a
  QAudioSource at 16 kHz mono (the sound system converts; where it cannot, the device's own format is converted
  with PyAV).
- What the computer plays: Qt 6.11 lists no monitor source, so on a PulseAudio or PipeWire server the monitors
  are listed with pactl and read with parec (worker.live.pulse), as the CLI does.

Listing touches the sound system too, so it also runs off the GUI thread (list_inputs, in a worker). Before a
QAudioSource is made, gui.player.SOUND_SERVER checks that Qt's sound server is still there (Qt aborts the process
otherwise). A device that is missing, busy or goes away ends the capture with one line (Capture.failed)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, Signal

from gui.player import SOUND_SERVER
from worker.core.constants import SAMPLE_RATE
from worker.live.pulse import CaptureError, ParecCapture, Source, pulse_sources

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

POLL_S = 0.05  # how often the input is read
DEVICE_BUFFER_S = 0.5  # what the sound system holds for us: room for a slow read (GIL, a busy CPU)
SILENT_DEVICE_S = 5.0  # an input that delivers nothing this long while active has gone away


@dataclass(frozen=True)
class InputChoice:
    label: str
    qt_id: bytes | None = None  # a QAudioDevice's id (a microphone or other input)
    monitor: Source | None = None  # a PulseAudio/PipeWire monitor source (what the computer plays)


def list_inputs() -> tuple[list[InputChoice], str | None]:
    """The inputs (Qt's), then what the computer plays (monitor sources), and a line when none can be used.
    Call it off the GUI thread."""
    from PySide6.QtMultimedia import QMediaDevices

    choices: list[InputChoice] = []
    if SOUND_SERVER.usable():
        default = QMediaDevices.defaultAudioInput()
        for device in QMediaDevices.audioInputs():
            mark = " (default)" if not default.isNull() and device.id() == default.id() else ""
            choices.append(InputChoice(device.description() + mark, qt_id=bytes(device.id().data())))
    try:
        monitors = [source for source in pulse_sources() if source.monitor_of]
    except CaptureError as exc:
        log.info("live: no monitor sources (%s)", exc)
        monitors = []
    choices += [InputChoice(f"What this computer plays: {source.description}", monitor=source) for source in monitors]
    problem = None if choices else ("no audio input found: connect a microphone, or start the sound server "
                                    "(PulseAudio or PipeWire on Linux)")
    return choices, problem


class Capture(QObject):
    """One input read on its own thread. on_samples(16 kHz mono float32) is called from that thread; `failed`
    (one line) reaches the GUI thread when the input is missing, busy or goes away. stop() returns at once."""

    failed = Signal(str)

    def __init__(self, choice: InputChoice, on_samples: Callable[["np.ndarray"], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.choice = choice
        self.on_samples = on_samples
        self._stopping = threading.Event()
        self._parec: ParecCapture | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.choice.monitor is not None:
            self._parec = ParecCapture(self.choice.monitor, self.on_samples, self._fail)
            self._parec.start()
        else:
            self._thread = threading.Thread(target=self._run, name="live-capture", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._parec is not None:
            parec, self._parec = self._parec, None
            threading.Thread(target=parec.stop, name="live-parec-stop", daemon=True).start()

    def finished(self, timeout_s: float) -> bool:
        """Wait (off the GUI thread) until what was captured has been handed on."""
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    def _fail(self, line: str) -> None:
        if not self._stopping.is_set():
            try:
                self.failed.emit(line)
            except RuntimeError:  # the window was closed meanwhile: nobody to tell
                log.warning("live: %s", line)

    # --- in the capture thread ---

    def _run(self) -> None:
        from PySide6.QtCore import QEventLoop
        from PySide6.QtMultimedia import QAudioSource, QMediaDevices, QtAudio

        events = QEventLoop()
        name = self.choice.label
        if not SOUND_SERVER.usable():
            self._fail(f"audio input '{name}': the sound server has gone; restart Whisper Desk to capture again")
            return
        device = next((d for d in QMediaDevices.audioInputs() if bytes(d.id().data()) == self.choice.qt_id), None)
        if device is None:
            self._fail(f"audio input '{name}' is not connected any more")
            return
        audio_format, convert = _capture_format(device)
        source = QAudioSource(device, audio_format)
        frame_bytes = audio_format.bytesPerFrame() or 2
        source.setBufferSize(int(audio_format.sampleRate() * DEVICE_BUFFER_S) * frame_bytes)  # else seconds of latency
        reader = source.start()
        if reader is None or source.error() != QtAudio.Error.NoError:
            self._fail(f"audio input '{name}' cannot be opened (busy, or not allowed: {source.error().name})")
            source.stop()
            return
        last_sound = time.monotonic()
        try:
            while not self._stopping.is_set():
                events.processEvents()
                data = bytes(reader.readAll().data())
                if data:
                    last_sound = time.monotonic()
                    self.on_samples(convert(data))
                if source.error() != QtAudio.Error.NoError or source.state() == QtAudio.State.StoppedState:
                    self._fail(f"audio input '{name}' stopped: disconnected or taken ({source.error().name})")
                    return
                if time.monotonic() - last_sound > SILENT_DEVICE_S:
                    self._fail(f"audio input '{name}' stopped delivering sound: disconnected?")
                    return
                time.sleep(POLL_S)
            tail = bytes(reader.readAll().data())  # what the device still held
            if tail:
                self.on_samples(convert(tail))
        finally:
            source.stop()


def _capture_format(device: Any) -> tuple[Any, Callable[[bytes], "np.ndarray"]]:
    """16 kHz mono Int16 where the device takes it (PulseAudio, PipeWire, most others: the sound system
    converts), else the device's own format converted here with PyAV."""
    import numpy as np
    from PySide6.QtMultimedia import QAudioFormat

    wanted = QAudioFormat()
    wanted.setSampleRate(SAMPLE_RATE)
    wanted.setChannelCount(1)
    wanted.setSampleFormat(QAudioFormat.SampleFormat.Int16)
    if device.isFormatSupported(wanted):
        return wanted, lambda data: np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    native = device.preferredFormat()
    return native, _Converter(native)


class _Converter:
    """A device's own format (rate, channels, Int16/Int32/Float) to 16 kHz mono float32, with PyAV's resampler."""

    def __init__(self, audio_format: Any) -> None:
        import av
        from PySide6.QtMultimedia import QAudioFormat

        kinds = {QAudioFormat.SampleFormat.Int16: ("s16", "<i2"), QAudioFormat.SampleFormat.Int32: ("s32", "<i4"),
                 QAudioFormat.SampleFormat.Float: ("flt", "<f4"), QAudioFormat.SampleFormat.UInt8: ("u8", "u1")}
        self.av_format, self.dtype = kinds[audio_format.sampleFormat()]
        self.channels = max(1, audio_format.channelCount())
        self.rate = audio_format.sampleRate()
        self.layout = "mono" if self.channels == 1 else "stereo" if self.channels == 2 else f"{self.channels}c"
        self.resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self.frame_bytes = self.channels * int(self.dtype[-1])

    def __call__(self, data: bytes) -> "np.ndarray":
        import av
        import numpy as np

        usable = len(data) // self.frame_bytes * self.frame_bytes
        samples = np.frombuffer(data[:usable], dtype=self.dtype).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format=self.av_format, layout=self.layout)
        frame.sample_rate = self.rate
        pieces = [piece.to_ndarray().reshape(-1) for piece in self.resampler.resample(frame)]
        return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, dtype=np.float32)

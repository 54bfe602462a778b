"""Capture without Qt, for `whisper-desk live`: the sources of a PulseAudio server (or PipeWire's, through
pipewire-pulse, what Linux desktops run) are listed with `pactl` and read with `parec`, as 16 kHz mono 16-bit
samples (the server converts). Why parec: it needs no Python package with a native library of its own, it is
there wherever a Linux desktop plays sound (pulseaudio-utils), a monitor source (what the computer plays) is read
the same way as a microphone, and a device unplugged or a server gone ends its stream, which is said in one line.
The window captures with QtMultimedia instead (gui.live_capture), on every platform."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from worker.core.constants import SAMPLE_RATE
from worker.core.errors import WhisperDeskError

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

BLOCK_S = 0.1  # samples handed on at a time
PACTL_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class CaptureError(WhisperDeskError):
    """An audio input cannot be used: the message names it and says why, in one line."""


@dataclass(frozen=True)
class Source:
    name: str  # what --device takes
    description: str
    monitor_of: str | None  # the output whose sound it carries (a monitor source), None for an input

    @property
    def label(self) -> str:
        return f"{self.description} (what {self.monitor_of} plays)" if self.monitor_of else self.description


def pulse_sources() -> list[Source]:
    """Every source of the sound server, inputs first, then monitors. CaptureError without one."""
    if shutil.which("pactl") is None or shutil.which("parec") is None:
        raise CaptureError("live capture needs pactl and parec (Debian/Ubuntu: apt install pulseaudio-utils) and "
                           "a PulseAudio or PipeWire sound server")
    try:
        run = subprocess.run(["pactl", "list", "sources"], capture_output=True, text=True, timeout=PACTL_TIMEOUT_S,
                             env=_c_locale())
    except subprocess.TimeoutExpired:
        raise CaptureError("the sound server did not answer (pactl timed out)") from None
    if run.returncode != 0:
        reason = (run.stderr.strip().splitlines() or ["no sound server"])[-1]
        raise CaptureError(f"no sound server to capture from ({reason})")
    sources: list[Source] = []
    fields: dict[str, str] = {}
    for line in run.stdout.splitlines() + ["Source #end"]:
        if line.startswith("Source #"):
            if "Name" in fields:
                monitor = fields.get("Monitor of Sink", "n/a")
                sources.append(Source(fields["Name"], fields.get("Description", fields["Name"]),
                                      None if monitor == "n/a" else monitor))
            fields = {}
        elif ":" in line and line.startswith("\t") and not line.startswith("\t\t"):
            key, _, value = line.strip().partition(":")
            fields.setdefault(key, value.strip())
    return sorted(sources, key=lambda source: source.monitor_of is not None)


def find_source(name: str | None) -> Source:
    """The source named (by name or description), or the server's default input. CaptureError when missing."""
    sources = pulse_sources()
    if name is None:
        default = subprocess.run(["pactl", "get-default-source"], capture_output=True, text=True,
                                 timeout=PACTL_TIMEOUT_S, env=_c_locale()).stdout.strip()
        name = default or None
        if name is None:
            if not sources:
                raise CaptureError("no audio input: the sound server has no source")
            return sources[0]
    for source in sources:
        if name in (source.name, source.description):
            return source
    raise CaptureError(f"audio input '{name}' not found; `whisper-desk live --list-devices` lists them")


class ParecCapture:
    """parec reading `source` on a thread: on_samples(16 kHz mono float32) for each block, and on_end(line) once,
    when the stream ends without stop() (the device was unplugged, the server went away)."""

    def __init__(self, source: Source, on_samples: Callable[["np.ndarray"], None],
                 on_end: Callable[[str], None]) -> None:
        self.source = source
        self.on_samples = on_samples
        self.on_end = on_end
        self._stopping = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["parec", f"--device={self.source.name}", "--format=s16le", f"--rate={SAMPLE_RATE}", "--channels=1",
             f"--latency-msec={int(BLOCK_S * 1000)}", "--client-name=Whisper Desk", "--stream-name=live transcription"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_c_locale())
        self._thread = threading.Thread(target=self._read, name="live-parec", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading; what was read is handed on first."""
        self._stopping.set()
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_S)
        if self._process is not None:
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()

    def _read(self) -> None:
        import numpy as np

        assert self._process is not None and self._process.stdout is not None
        block = int(BLOCK_S * SAMPLE_RATE) * 2
        leftover = b""
        while True:
            data = self._process.stdout.read1(block) if hasattr(self._process.stdout, "read1") else self._process.stdout.read(block)
            if not data:
                break
            data, leftover = leftover + data, b""
            if len(data) % 2:
                data, leftover = data[:-1], data[-1:]
            self.on_samples(np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0)
        if not self._stopping.is_set():
            self._process.wait()
            reason = (self._process.stderr.read().decode(errors="replace").strip().splitlines()
                      if self._process.stderr else [])
            why = reason[-1] if reason else f"parec exited with {self._process.returncode}"
            self.on_end(f"audio input '{self.source.label}' stopped: disconnected or busy ({why})")


def _c_locale() -> dict[str, str]:
    """pactl's output in English (its field names are translated otherwise)."""
    import os

    return {**os.environ, "LC_ALL": "C"}

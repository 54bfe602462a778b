"""What a live transcription hears, on disk as it arrives: a 16 kHz mono FLAC (soundfile) appended and flushed
block by block, so a crash loses only what the FLAC encoder holds for its next frame (under FLAC_FRAME_S). Beside it, while it is being recorded, a
marker file (NAME.flac.live, JSON: when it started, with which model) says the recording is unfinished. A clean
stop removes the marker once the job is saved; a marker found at the next start means the process died, and
`unfinished_recordings` hands those recordings back to be queued as ordinary jobs."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from worker.core.constants import APP_DIRS_NAME, SAMPLE_RATE

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

RECORDINGS_FOLDER = "recordings"  # under the app's data folder
MARKER_SUFFIX = ".live"
FLAC_FRAME_S = 4096 / SAMPLE_RATE  # libsndfile's FLAC frame: samples short of a whole frame wait in the encoder


def recordings_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_DIRS_NAME, appauthor=False)) / RECORDINGS_FOLDER


def recording_name(source: str, when: float | None = None) -> str:
    """"Live 2026-05-01 14-03-22 (Built-in Microphone).flac": the time, and the input it came from."""
    stamp = time.strftime("%Y-%m-%d %H-%M-%S", time.localtime(when or time.time()))
    safe = "".join(c if c.isalnum() or c in " -_.()" else "_" for c in source).strip()[:60]
    return f"Live {stamp}" + (f" ({safe})" if safe else "") + ".flac"


@dataclass(frozen=True)
class Unfinished:
    """A recording a process left without finishing: its file and what the marker says."""

    path: Path
    model: str
    started: float


class Recording:
    """append() from any one thread at a time; close() ends the file (the marker stays until finished())."""

    def __init__(self, path: Path, model: str) -> None:
        import soundfile

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.marker = path.with_name(path.name + MARKER_SUFFIX)
        self.started = time.time()
        self.marker.write_text(json.dumps({"started": self.started, "model": model, "host": socket.gethostname(),
                                           "pid": os.getpid()}), encoding="utf-8")
        self._file = soundfile.SoundFile(path, "w", samplerate=SAMPLE_RATE, channels=1, format="FLAC",
                                         subtype="PCM_16")
        self._lock = threading.Lock()
        self.samples = 0

    @classmethod
    def create(cls, folder: Path, source: str, model: str) -> "Recording":
        path = folder / recording_name(source)
        counter = 2
        while path.exists():  # two starts in one second
            path = folder / recording_name(f"{source} {counter}")
            counter += 1
        return cls(path, model)

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def append(self, samples: "np.ndarray") -> None:
        with self._lock:
            if self._file.closed:
                return
            self._file.write(samples)
            self._file.flush()
            self.samples += len(samples)

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def finished(self) -> None:
        """The recording is a library job now: nothing to recover at the next start."""
        self.close()
        self.marker.unlink(missing_ok=True)


def unfinished_recordings(folder: Path | None = None) -> list[Unfinished]:
    """Recordings whose process died before they were saved as jobs (their marker is still there), oldest
    first; a marker whose recording is gone or empty is removed."""
    folder = folder or recordings_dir()
    found: list[Unfinished] = []
    for marker in sorted(folder.glob(f"*.flac{MARKER_SUFFIX}")) if folder.is_dir() else []:
        path = marker.with_name(marker.name.removesuffix(MARKER_SUFFIX))
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable marker (%s); the recording is queued with the default model", marker.name, exc)
            info = {}
        if not path.is_file() or path.stat().st_size == 0:
            marker.unlink(missing_ok=True)
            continue
        if info.get("host") == socket.gethostname() and _alive(int(info.get("pid") or 0)):
            continue  # still being recorded by another live process
        found.append(Unfinished(path, str(info.get("model") or ""), float(info.get("started") or 0.0)))
    return sorted(found, key=lambda item: item.started)


def _alive(pid: int) -> bool:
    if pid <= 0 or pid == os.getpid():
        return pid == os.getpid()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process of that number
        return True
    return True


def forget_marker(path: Path) -> None:
    """The unfinished recording `path` was handed on (queued as a job)."""
    path.with_name(path.name + MARKER_SUFFIX).unlink(missing_ok=True)

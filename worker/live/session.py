"""One live transcription: each block of samples a capture hands in goes to the recording (worker.live.recording,
on disk as it arrives) and to the engine (worker.live.streaming); stop() makes every word heard final and returns
the live transcript (what was shown and printed as it was heard).

save() queues the recording as an ordinary local job of the same model, through the job queue: the transcript kept
in the library is the file transcript (beam search over the whole recording, with its context), not the live one,
whose quick passes over a few seconds of audio at a time can settle on a mishearing ("am I" for "my") when the
machine is busy. The job is edited, searched, labelled and exported like any other, and nothing heard is lost:
the recording is complete on disk before it is queued, and a queued job survives a restart.

resume_unfinished() queues the recordings an earlier process left (it crashed, or was killed) as ordinary jobs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from worker.core.options import DEFAULT_MODEL, TranscriptionOptions
from worker.live.recording import Recording, forget_marker, recordings_dir, unfinished_recordings
from worker.live.streaming import LiveStream, LiveUpdate
from worker.transcripts.model import Transcript

if TYPE_CHECKING:
    import numpy as np

    from worker.jobs.queue import JobQueue
    from worker.library.jobs import JobRecord


class LiveSession:
    """feed() from the capture's thread; pause(), resume(), stop() and save() from the controlling one."""

    def __init__(self, source_name: str, on_update: Callable[[LiveUpdate], None], model: str = DEFAULT_MODEL,
                 language: str | None = None, folder: Path | None = None,
                 on_error: Callable[[str], None] | None = None) -> None:
        # what the saved recording's job is transcribed with: the file transcript of the live model
        self.options = TranscriptionOptions(model=model, language=language, word_timestamps=True)
        self.recording = Recording.create(folder or recordings_dir(), source_name, model)
        self.stream = LiveStream(model, on_update, language, on_error)
        self.paused = False
        self._stopped = False
        self._lock = threading.Lock()
        self.transcript: Transcript | None = None

    @property
    def path(self) -> Path:
        return self.recording.path

    @property
    def seconds(self) -> float:
        """What was recorded so far (pauses not counted)."""
        return self.recording.seconds

    def feed(self, samples: "np.ndarray") -> None:
        """16 kHz mono float32 samples, as they were heard."""
        with self._lock:
            if self.paused or self._stopped or len(samples) == 0:
                return
            self.recording.append(samples)
        self.stream.add_audio(samples)

    def pause(self) -> None:
        """What is heard until resume() is neither recorded nor transcribed."""
        with self._lock:
            self.paused = True

    def resume(self) -> None:
        with self._lock:
            self.paused = False

    def stop(self) -> Transcript:
        """Everything heard becomes final; the recording file is complete. Returns the transcript."""
        with self._lock:
            self._stopped = True
            self.recording.close()
        self.stream.stop()
        self.transcript = Transcript(
            segments=self.stream.segments(), language=self._language(), duration=round(self.recording.seconds, 3),
            model=self.stream.label, backend="local", source=str(self.recording.path),
            timings={"gpu": "cpu", "engine": "faster-whisper (live)", "audio_s": round(self.recording.seconds, 3)})
        return self.transcript

    def save(self, jobs: "JobQueue") -> "JobRecord":
        """The recording queued as a local job for its file transcript (see the module's doc); stop() first."""
        if self.transcript is None:
            self.stop()
        [record] = jobs.add_files([self.recording.path], backend="local", options=self.options, again=True)
        self.recording.finished()
        return record

    def _language(self) -> str | None:
        transcriber = self.stream.transcriber
        return transcriber.detected_language if transcriber is not None else self.options.language


def resume_unfinished(jobs: "JobQueue", folder: Path | None = None) -> list["JobRecord"]:
    """The recordings a process left unfinished (it died while recording), queued as ordinary jobs."""
    records: list[JobRecord] = []
    for unfinished in unfinished_recordings(folder or recordings_dir()):
        options = TranscriptionOptions(model=unfinished.model or DEFAULT_MODEL, word_timestamps=True)
        records += jobs.add_files([unfinished.path], backend="local", options=options, again=True)
        forget_marker(unfinished.path)
    return records

"""One live transcription: each block of samples a capture hands in goes to the recording (worker.live.recording,
on disk as it arrives) and to the engine (worker.live.streaming); stop() makes every word heard final and returns
the transcript, and save() puts it in the library as a finished job of the recording, through the job queue, so
it is edited, searched, labelled and exported like any other. When the engine could not run (its model would not
load), the recording is queued as an ordinary job instead: nothing heard is lost.

resume_unfinished() queues the recordings an earlier process left (it crashed, or was killed) as ordinary jobs."""

from __future__ import annotations

import threading
import time
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
        self.source_name = source_name
        self.options = TranscriptionOptions(model=model, language=language, word_timestamps=True, beam_size=1)
        self.recording = Recording.create(folder or recordings_dir(), source_name, model)
        self.stream = LiveStream(model, on_update, language, on_error)
        self.started = time.time()
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
        """The recording as a library job: finished with the live transcript, or queued when there is none."""
        transcript = self.transcript if self.transcript is not None else self.stop()
        if self.stream.error is not None or self.stream.transcriber is None:
            [record] = jobs.add_files([self.recording.path], options=TranscriptionOptions(model=self.options.model))
        else:
            line = (f"{self.recording.path.name}: transcribed live from {self.source_name} "
                    f"({self.recording.seconds:.1f} s, {len(transcript.segments)} lines)")
            record = jobs.add_finished_job(self.recording.path, transcript, self.options, line, started=self.started)
        self.recording.finished()
        return record

    def _language(self) -> str | None:
        transcriber = self.stream.transcriber
        return transcriber.detected_language if transcriber is not None else self.options.language


def resume_unfinished(jobs: "JobQueue", folder: Path | None = None) -> list["JobRecord"]:
    """The recordings a process left unfinished (it died while recording), queued as ordinary jobs."""
    records: list[JobRecord] = []
    for unfinished in unfinished_recordings(folder or recordings_dir()):
        options = TranscriptionOptions(model=unfinished.model or DEFAULT_MODEL)
        records += jobs.add_files([unfinished.path], options=options)
        forget_marker(unfinished.path)
    return records

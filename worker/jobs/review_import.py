"""Subtitles imported for review: an SRT/VTT read as a transcript, matched to its audio, kept as a finished job.

The window's import (gui.export_dialog.ImportForReview) only asks for the files and runs these steps off the GUI
thread; every rule lives here. The window adds the job through the job queue (JobQueue.add_review_job), which
writes it with add_review_job and reports it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from worker.core.errors import MediaError
from worker.library.job_status import JobStatus
from worker.transcripts.formats import import_subtitles
from worker.transcripts.model import Transcript

if TYPE_CHECKING:
    from worker.library.library import Library

# a first cue up to this far past the audio's end still counts as the same recording (rounding, trailing silence)
LATE_CUE_SLACK_S = 1.0


def matching_audio(subtitles: str | Path) -> Path | None:
    """A media file next to the subtitles with the same name (talk.srt -> talk.mp3), if there is one."""
    from worker.media.audio import MEDIA_EXTENSIONS

    subtitles = Path(subtitles)
    for candidate in sorted(subtitles.parent.glob(f"{subtitles.stem}.*")):
        if candidate.suffix.lower() in MEDIA_EXTENSIONS and candidate.is_file():
            return candidate
    return None


def read_subtitles(subtitles: str | Path, *, guess_audio: bool = True) -> tuple[Transcript, Path | None]:
    """The subtitles as a transcript and (with guess_audio) the matching audio next to them, if any.

    Raises MediaError naming the subtitle file when it cannot be read as subtitles."""
    return import_subtitles(subtitles), matching_audio(subtitles) if guess_audio else None


def fit_to_audio(transcript: Transcript, subtitles: str | Path, audio: str | Path, duration: float) -> Transcript:
    """The transcript pointed at its audio (source and duration, when known: `duration` > 0).

    Raises MediaError naming the subtitle file when its first cue starts after the audio ends (the wrong audio)."""
    audio = Path(audio)
    first = transcript.segments[0].start
    if duration > 0 and first > duration + LATE_CUE_SLACK_S:
        raise MediaError(subtitles, f"the first cue starts at {first:.1f} s, after the end of {audio.name} "
                                    f"({duration:.1f} s); is this the right audio?")
    transcript.source = str(audio)
    transcript.duration = round(duration, 3) if duration > 0 else transcript.duration
    return transcript


def review_log_line(transcript: Transcript, subtitles: str | Path) -> str:
    """The review job's line in the library's log."""
    return f"imported {Path(subtitles).name} ({len(transcript.segments)} cues) for review"


def add_review_job(library: Library, transcript: Transcript, audio: str | Path, subtitles: str | Path) -> int:
    """A finished job in the library holding the subtitles; "local": re-running it transcribes the audio."""
    from worker.core.options import TranscriptionOptions

    record = library.jobs.add(Path(audio), TranscriptionOptions(), "local")
    now = time.time()
    library.jobs.mark_started(record.id, now)
    library.jobs.mark_ended(record.id, JobStatus.DONE, now, 0.0, duration=transcript.duration)
    library.transcripts.save(record.id, transcript)
    library.log.add(record.id, review_log_line(transcript, subtitles))
    return int(record.id)


__all__ = ["LATE_CUE_SLACK_S", "add_review_job", "fit_to_audio", "matching_audio", "read_subtitles", "review_log_line"]

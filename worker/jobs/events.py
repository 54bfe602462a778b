"""What the job queue reports: one frozen dataclass per kind of change, each carrying the change itself (the new
record, the new segments, the status and its error, the edited transcript), so a listener never has to read the
library to learn what happened. The queue writes every change to the library first, then reports it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from worker.library.job_status import JobStatus
from worker.library.jobs import JobRecord
from worker.transcripts.model import Segment, Transcript


@dataclass(frozen=True)
class JobAdded:
    record: JobRecord


@dataclass(frozen=True)
class JobChanged:
    record: JobRecord  # as written


@dataclass(frozen=True)
class JobRemoved:
    job_id: int


@dataclass(frozen=True)
class JobsReordered:
    order: tuple[int, ...] = ()  # every job's id, in the new queue order


@dataclass(frozen=True)
class JobStarted:
    job_id: int
    record: JobRecord | None = field(default=None, compare=False)  # as written when it started


@dataclass(frozen=True)
class JobProgress:
    job_id: int
    fraction: float  # only moves forward
    label: str  # Progress.label() of the latest event
    eta_s: float | None


@dataclass(frozen=True)
class SegmentsArrived:
    job_id: int
    segments: list[Segment]  # the new ones, in the order the backend sent them


@dataclass(frozen=True)
class JobFinished:
    """A job's ending. `record` is the job as written (its status, error, elapsed time); `transcript` the one
    saved when it is done. Equality looks at the id, status and error only."""

    job_id: int
    status: JobStatus  # done, failed or cancelled
    error: str | None = None  # failed: the one-line reason
    record: JobRecord | None = field(default=None, compare=False)
    transcript: Transcript | None = field(default=None, compare=False)


@dataclass(frozen=True)
class LogLine:
    """A line of the log, as written to the library's log ("NAME: …" for a job's line)."""

    job_id: int | None
    text: str


@dataclass(frozen=True)
class TimingLine(LogLine):
    """A chunk's (or, chunk_index None, the whole job's) GPU/CPU timings: the log line and the numbers."""

    timings: Mapping[str, Any] = field(default_factory=dict, compare=False)
    chunk_index: int | None = None
    chunk_count: int | None = None


@dataclass(frozen=True)
class SummaryLine(LogLine):
    """The job's one cost summary (worker.modal.cost.summarize) and what produced the transcript."""

    summary: str = ""  # the summary without the file's name
    model: str = ""
    backend: str = ""


@dataclass(frozen=True)
class FailureLine(LogLine):
    """The log's line for a job that failed; the same reason ends the job (JobFinished.error)."""

    reason: str = ""


@dataclass(frozen=True)
class TranscriptReused(LogLine):
    """The log's line for a job that was not transcribed: its file is the same recording (same bytes), model and
    options as an earlier finished job, whose transcript it got (worker.jobs.same_recording). Its JobFinished
    follows, done, with that transcript."""

    earlier_job_id: int = 0
    earlier_path: str = ""


@dataclass(frozen=True)
class Note:
    """Something a user should read once (skipped files, recovered jobs)."""

    text: str


@dataclass(frozen=True)
class PathsAdded:
    """The answer to add_paths: the new jobs and the notes about skipped entries."""

    records: list[JobRecord]
    notes: list[str]


@dataclass(frozen=True)
class ModalSetupNeeded:
    reason: str


@dataclass(frozen=True)
class DurationKnown:
    job_id: int
    seconds: float  # negative: could not be read


@dataclass(frozen=True)
class PausedChanged:
    paused: bool


@dataclass(frozen=True)
class TranscriptEdited:
    """An edit of a finished job's transcript was saved: `transcript` is what the library holds now (the
    original again when `edited` is False: the edit was reverted)."""

    job_id: int
    transcript: Transcript
    edited: bool


@dataclass(frozen=True)
class RegionTranscribed:
    """A time range of a job's audio was transcribed again (the editor puts the segments in; saving that edit
    reports TranscriptEdited)."""

    job_id: int | None
    start_s: float
    end_s: float
    segments: list[Segment]


@dataclass(frozen=True)
class VoiceSaved:
    """A speaker's voice was saved to the library under `name` (new recordings name it)."""

    voice_id: int
    name: str


QueueEvent = Union[JobAdded, JobChanged, JobRemoved, JobsReordered, JobStarted, JobProgress, SegmentsArrived,
                   JobFinished, LogLine, Note, PathsAdded, ModalSetupNeeded, DurationKnown, PausedChanged,
                   TranscriptEdited, RegionTranscribed, VoiceSaved]

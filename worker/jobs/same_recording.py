"""The same recording is never transcribed twice by accident. A job's file is known by its content (the SHA-256 of
its bytes, read in the background before the job may start: worker.jobs.queue), not by its name or path. A queued
job whose content, model and options (TranscriptionOptions equal; the backend does not matter) match a finished
job gets a copy of that job's transcript instead of a run: no engine time, no Modal bill. A job marked
`transcribe_again` (the window's Retry, `whisper-desk transcribe --again`) is transcribed even so."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from worker.core.cancel import CancelToken
from worker.library.job_status import JobStatus
from worker.library.jobs import JobRecord

if TYPE_CHECKING:
    from worker.library.library import Library
    from worker.transcripts.model import Transcript

HASH_CHUNK_BYTES = 1024 * 1024  # read this much at a time (a cancel is noticed between pieces)


def content_sha256(path: str | Path, cancel: CancelToken) -> str:
    """The SHA-256 of the file's bytes, read in pieces; Cancelled between them, OSError when it cannot be read."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while piece := handle.read(HASH_CHUNK_BYTES):
            cancel.raise_if_cancelled()
            digest.update(piece)
    return digest.hexdigest()


def same_recording(record: JobRecord, other: JobRecord) -> bool:
    """Whether `other` is another job of the same recording, model and options as `record`."""
    return (other.id != record.id and record.content_sha256 is not None
            and other.content_sha256 == record.content_sha256 and other.options == record.options)


def earlier_transcript(record: JobRecord, jobs: Iterable[JobRecord]) -> JobRecord | None:
    """The finished (done) job among `jobs` whose transcript `record` takes instead of a run: the same recording,
    model and options, the latest to finish (its transcript is the newest). None when there is none, or when
    `record` is to be transcribed again."""
    if record.transcribe_again:
        return None
    matches = [job for job in jobs if job.status == JobStatus.DONE and same_recording(record, job)]
    return max(matches, key=lambda job: (job.finished or 0.0, job.id), default=None)


def copy_transcript(library: Library, earlier: JobRecord, record: JobRecord) -> Transcript | None:
    """The earlier job's transcript saved as `record`'s, for its own file: the engine's original, and the user's
    edit of it when there is one (what the earlier job shows). Returns what the job shows; None when the earlier
    job's transcript is gone (the job is then transcribed)."""
    original = library.transcripts.original(earlier.id)
    if original is None:
        return None
    edited = library.transcripts.get(earlier.id) if library.transcripts.is_edited(earlier.id) else None
    original.source = record.path
    library.transcripts.save(record.id, original)
    if edited is None:
        return original
    edited.source = record.path
    library.transcripts.save_edit(record.id, edited)
    return edited


def reuse_line(earlier: JobRecord) -> str:
    """What the job's log says (after its file's name)."""
    return f"same recording as {earlier.name} (job {earlier.id}): its transcript was reused"

"""Transcripts in the library: the engine's original and the user's edit, each job's as JSON. A write the disk
refuses stays in memory, and readable here, until it can be saved."""

from __future__ import annotations

import json
import time

from worker.library.database import Database
from worker.transcripts.model import Transcript


class TranscriptStore:
    def __init__(self, database: Database) -> None:
        self._db = database
        self._kept: dict[int, dict[str, str | None]] = {}  # job id -> {"original"/"edited": JSON} not yet on disk
        database.when_all_saved(self._kept.clear)

    def save(self, job_id: int, transcript: Transcript) -> None:
        """The engine's result: becomes the original, and clears any edit."""
        original = json.dumps(transcript.to_dict())
        with self._db.lock:
            if not self._db.write_or_keep(
                "INSERT INTO transcripts (job_id, original, edited, updated) VALUES (?, ?, NULL, ?) "
                "ON CONFLICT(job_id) DO UPDATE SET original = excluded.original, edited = NULL, updated = excluded.updated",
                (job_id, original, time.time()),
            ):
                self._kept[job_id] = {"original": original, "edited": None}

    def save_edit(self, job_id: int, transcript: Transcript) -> None:
        edited = json.dumps(transcript.to_dict())
        with self._db.lock:
            if not self._db.write_or_keep("UPDATE transcripts SET edited = ?, updated = ? WHERE job_id = ?",
                                          (edited, time.time(), job_id)):
                self._kept.setdefault(job_id, {})["edited"] = edited

    def revert_edit(self, job_id: int) -> None:
        with self._db.lock:
            if not self._db.write_or_keep("UPDATE transcripts SET edited = NULL, updated = ? WHERE job_id = ?",
                                          (time.time(), job_id)):
                self._kept.setdefault(job_id, {})["edited"] = None

    def get(self, job_id: int) -> Transcript | None:
        """The edited transcript if there is one, else the original."""
        original, edited = self._texts(job_id)
        text = edited or original
        return Transcript.from_dict(json.loads(text)) if text else None

    def original(self, job_id: int) -> Transcript | None:
        original, _ = self._texts(job_id)
        return Transcript.from_dict(json.loads(original)) if original else None

    def is_edited(self, job_id: int) -> bool:
        original, edited = self._texts(job_id)
        return original is not None and edited is not None

    def _texts(self, job_id: int) -> tuple[str | None, str | None]:
        """(original, edited) JSON as saved, or as kept in memory while the disk refuses them."""
        with self._db.lock:
            row = self._db.row("SELECT original, edited FROM transcripts WHERE job_id = ?", (job_id,))
            original, edited = (row["original"], row["edited"]) if row is not None else (None, None)
            kept = self._kept.get(job_id, {})
        return kept.get("original", original), kept["edited"] if "edited" in kept else edited

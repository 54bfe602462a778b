"""Watch folder settings (what a watched folder's files become) and whether a job's outputs are written by
its watch folder."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker.core.options import DEFAULT_MODEL, MODEL_NAMES

if TYPE_CHECKING:  # the preferences import this module: the library loads only when a watch runs
    from worker.library.library import Library
    from worker.library.watched_files import WatchedFile

DEFAULT_FORMATS = ("txt",)
WATCH_BACKENDS = ("local", "modal")


class ExistingFiles(str, Enum):
    """What becomes of the media files a folder already holds when it is added (its first scan)."""

    TRANSCRIBE = "transcribe"  # queued like new ones (what watch folders always did)
    SKIP = "skip"  # noted as seen (watched_files), never queued; only files that arrive later are transcribed

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class WatchFolder:
    """One watched folder and what its files become."""

    folder: str
    backend: str = "local"
    model: str = DEFAULT_MODEL
    formats: tuple[str, ...] = DEFAULT_FORMATS
    output_dir: str = ""  # "" writes next to each file
    existing: ExistingFiles = ExistingFiles.TRANSCRIBE
    # when it was added (time.time()): the files already there are skipped once per addition, so a folder
    # removed and added again asks again, and files that arrive while nothing watches are still transcribed
    added: float = 0.0

    def problem(self) -> str | None:
        """Why these settings cannot be used (one line), or None."""
        from worker.transcripts.formats import FORMAT_LABELS

        if not self.folder:
            return "no folder chosen"
        if self.backend not in WATCH_BACKENDS:
            return f"unknown backend {self.backend!r}; choose local or modal"
        if self.model not in MODEL_NAMES:
            return f"unknown model {self.model!r}"
        unknown = [fmt for fmt in self.formats if fmt not in FORMAT_LABELS]
        if unknown:
            return f"unknown output format {unknown[0]!r}; choose from {', '.join(FORMAT_LABELS)}"
        if not self.formats:
            return "choose at least one output format"
        return None

    def output_folder(self, source: Path) -> Path:
        return Path(self.output_dir).expanduser() if self.output_dir else source.parent

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "backend": self.backend, "model": self.model, "formats": list(self.formats),
                "output_dir": self.output_dir, "existing": self.existing.value, "added": self.added}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WatchFolder":
        """A stored entry; unknown or damaged values fall back to the defaults."""
        defaults = cls(folder="")
        formats = data.get("formats")
        existing = str(data.get("existing") or defaults.existing.value)
        added = data.get("added")
        entry = cls(
            folder=str(data.get("folder") or ""),
            backend=str(data.get("backend") or defaults.backend),
            model=str(data.get("model") or defaults.model),
            formats=tuple(str(f).lower() for f in formats) if isinstance(formats, (list, tuple)) else defaults.formats,
            output_dir=str(data.get("output_dir") or ""),
            existing=ExistingFiles(existing) if existing in EXISTING_CHOICES else defaults.existing,
            added=float(added) if isinstance(added, (int, float)) else defaults.added,
        )
        fixes: dict[str, Any] = {}
        if entry.backend not in WATCH_BACKENDS:
            fixes["backend"] = defaults.backend
        if entry.model not in MODEL_NAMES:
            fixes["model"] = defaults.model
        if replace(entry, **fixes).problem() not in (None, "no folder chosen"):
            fixes["formats"] = defaults.formats
        return replace(entry, **fixes)


def parse_watch_folders(raw: Any) -> tuple[WatchFolder, ...]:
    """Preferences' watch_folders from JSON: entries without a folder are dropped."""
    if not isinstance(raw, (list, tuple)):
        return ()
    entries = (WatchFolder.from_dict(item) if isinstance(item, dict) else item for item in raw)
    return tuple(entry for entry in entries if isinstance(entry, WatchFolder) and entry.folder)


def exports_itself(library: Library, job_id: int, path: str | Path) -> bool:
    """True when a watch folder is taking this job's file (claimed, or queued as this very job): its outputs
    are that folder's only, so the queue's automatic export (Preferences) leaves it alone (never written twice)."""
    row = library.watched_files.get(path)
    if row is None:
        return False
    if row.state == WatchState.CLAIMED:
        return not stale_claim(row)
    return row.state == WatchState.QUEUED and row.job_id == job_id


EXISTING_CHOICES = tuple(choice.value for choice in ExistingFiles)
CLAIM_STALE_S = 60.0  # a claim not followed by its job within this long was left by a watcher that stopped


class WatchState(str, Enum):
    """What became of a watched file (watched_files.state)."""

    CLAIMED = "claimed"  # a watcher is queueing it (two watchers on one library never both queue a file)
    QUEUED = "queued"  # its job is queued or running
    DONE = "done"  # transcribed; outputs written
    FAILED = "failed"  # the job failed (bad media, ...): not tried again unless the file changes
    CANCELLED = "cancelled"  # cancelled by the user: not tried again unless the file changes
    REMOVED = "removed"  # its job was removed from the queue: not tried again unless the file changes
    SKIPPED = "skipped"  # already there when the folder was added, and the user chose to skip those

    def __str__(self) -> str:
        return self.value


def stale_claim(row: WatchedFile) -> bool:
    return row.state == WatchState.CLAIMED and row.updated < time.time() - CLAIM_STALE_S


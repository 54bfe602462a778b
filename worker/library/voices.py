"""Known voices in the library: a named speaker's averaged voice embedding (float32 bytes, never audio)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from worker.library.database import Database, row_id


@dataclass(frozen=True)
class KnownVoice:
    """A voice named once and recognised in later files: `embedding` is the L2-normalised average of the
    `count` speaker embeddings saved under `name`."""

    id: int
    name: str
    embedding: tuple[float, ...]
    count: int
    created: float


class VoiceStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def save(self, name: str, embedding: Iterable[float]) -> int:
        """Save a speaker's voice embedding under `name` (trimmed, not empty). Saving a name again (in any
        case) refines that voice: the average of everything saved under it. Returns the voice's id."""
        import numpy as np

        name = name.strip()
        if not name:
            raise ValueError("a known voice needs a name")
        vector = np.asarray(list(embedding), dtype=np.float32)
        if vector.ndim != 1 or not vector.size or not np.all(np.isfinite(vector)) or not np.any(vector):
            raise ValueError("not a voice embedding")
        vector /= np.linalg.norm(vector)
        with self._db.lock:
            row = self._db.row("SELECT * FROM known_voices WHERE name = ? COLLATE NOCASE ORDER BY id", (name,))
            if row is None:
                return row_id(self._db.write("INSERT INTO known_voices (name, embedding, count, created) VALUES (?, ?, 1, ?)",
                                             (name, vector.tobytes(), time.time())))
            old = np.frombuffer(row["embedding"], dtype=np.float32)
            if old.shape != vector.shape:
                raise ValueError(f"the voice {row['name']!r} was saved by another speaker model")
            merged = old * row["count"] + vector
            merged /= np.linalg.norm(merged)
            self._db.write("UPDATE known_voices SET embedding = ?, count = count + 1 WHERE id = ?", (merged.tobytes(), row["id"]))
            return int(row["id"])

    def all(self) -> list[KnownVoice]:
        """Every known voice, by name."""
        import numpy as np

        return [
            KnownVoice(row["id"], row["name"], tuple(float(x) for x in np.frombuffer(row["embedding"], dtype=np.float32)),
                       row["count"], row["created"])
            for row in self._db.rows("SELECT * FROM known_voices ORDER BY name COLLATE NOCASE, id")
        ]

    def delete(self, voice_id: int) -> None:
        """Forget a known voice (transcripts keep the names they were given)."""
        self._db.write("DELETE FROM known_voices WHERE id = ?", (voice_id,))

"""The editor's saves, off the GUI thread: each change of a transcript is written to the library
(Library.save_edit, or revert_edit once it is back to the original) by one gui.background call at a time, so
serialising an hour's transcript never stalls typing.

Order: writes run one after another; a job's newer state replaces its older one while that waits, so the last
state written is always the latest. `flush()` waits (bounded) until everything asked is written: the window
calls it before it closes the library."""

from __future__ import annotations

import threading
from typing import Any

from PySide6.QtCore import QObject, Signal

from gui.background import Call
from worker.transcripts.model import Transcript


class EditSaver(QObject):
    failed = Signal(str)  # a write the library refused (one line)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._changed = threading.Condition()
        self._pending: dict[tuple[int, int], tuple[Any, int, Transcript | None]] = {}
        self._busy = False

    def save(self, library: Any, job_id: int, transcript: Transcript | None) -> None:
        """Write `transcript` as the job's edit (None: revert to the original), soon and in order."""
        key = (id(library), job_id)
        with self._changed:
            self._pending.pop(key, None)  # an older state not yet written is never needed
            self._pending[key] = (library, job_id, transcript)
            if self._busy:
                return
            self._busy = True
        Call(self._drain).start()

    def _drain(self) -> None:
        while True:
            with self._changed:
                if not self._pending:
                    self._busy = False
                    self._changed.notify_all()
                    return
                library, job_id, transcript = self._pending.pop(next(iter(self._pending)))
            try:
                if transcript is None:
                    library.revert_edit(job_id)
                else:
                    library.save_edit(job_id, transcript)
            except Exception as exc:  # a closed library, a full disk: say so, and go on with the rest
                try:
                    self.failed.emit(f"The edit was not saved: {exc}")
                except RuntimeError:
                    pass  # the editor is gone

    def pending(self) -> bool:
        with self._changed:
            return self._busy

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every save asked for is written; False if `timeout_s` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._busy, timeout_s)

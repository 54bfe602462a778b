"""The one interface behind which local and Modal transcription sit."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from worker.events import CancelToken, Emit
from worker.options import TranscriptionOptions
from worker.transcript import Transcript

BACKEND_LABELS = {"local": "This computer", "modal": "Modal T4"}


class Backend(Protocol):
    name: str  # "local" or "modal"

    def transcribe(
        self, path: Path, options: TranscriptionOptions, emit: Emit, cancel: CancelToken
    ) -> Transcript:
        """Transcribe one file. Emits Progress/SegmentsReady/TimingReport as it goes.
        Raises MediaError (bad file), ModalSetupError, TranscriptionError, or Cancelled."""
        ...

    def close(self) -> None:
        """Release processes, clients and models."""
        ...


def create_backend(name: str, **settings: object) -> Backend:
    """The backend by name; heavy imports happen here, not at module import."""
    if name == "local":
        from worker.backends.local import LocalBackend

        return LocalBackend(**settings)  # type: ignore[arg-type]
    if name == "modal":
        from worker.backends.modal_fanout import ModalBackend

        return ModalBackend(**settings)  # type: ignore[arg-type]
    raise ValueError(f"unknown backend {name!r}; choose local or modal")

"""Errors a user sees: each carries one clear line."""

from __future__ import annotations

from pathlib import Path


class WhisperDeskError(Exception):
    """Base for every error whose str() is a one-line message meant for the user."""


class MediaError(WhisperDeskError):
    """A file could not be read as audio. The message names the file."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{Path(path).name}: {reason}")


class TranscriptionError(WhisperDeskError):
    """A transcription failed for a reason other than the input file."""


class ModalSetupError(WhisperDeskError):
    """Modal is not usable: the message says what to do."""


class Cancelled(WhisperDeskError):
    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)

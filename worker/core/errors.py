"""Errors a user sees: each carries one clear line."""

from __future__ import annotations

from pathlib import Path


def one_line(text: str) -> str:
    """The first non-empty line of `text`, stripped ("" when there is none)."""
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def exception_line(exc: BaseException) -> str:
    """An exception as one line: the first line of its message, or its class name when it has none."""
    return one_line(str(exc)) or type(exc).__name__


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

"""What a user asks of a transcription."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

MODEL_NAMES = (
    "tiny", "tiny.en", "base", "base.en", "small", "small.en",
    "medium", "medium.en", "large-v3", "turbo",
)
DEFAULT_MODEL = "tiny.en"  # ships with the app, so it works offline
MAX_SPEAKERS = 8
Task = Literal["transcribe", "translate"]


@dataclass(frozen=True)
class TranscriptionOptions:
    model: str = DEFAULT_MODEL
    language: str | None = None  # None: detect
    task: Task = "transcribe"
    word_timestamps: bool = False
    initial_prompt: str | None = None
    beam_size: int = 5
    speakers: str | None = None  # label speakers: "auto", or how many ("2"); None: off

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.model!r}; choose one of {', '.join(MODEL_NAMES)}")
        if self.task not in ("transcribe", "translate"):
            raise ValueError(f"unknown task {self.task!r}; choose transcribe or translate")
        if self.speakers is not None and self.speakers != "auto" and not (
            str(self.speakers).isdigit() and 1 <= int(self.speakers) <= MAX_SPEAKERS
        ):
            raise ValueError(f"speakers must be auto or a number from 1 to {MAX_SPEAKERS}, not {self.speakers!r}")
        if self.speakers is not None and not self.word_timestamps:
            # speaker labels split segments at the words where the voice changes: every engine must time words
            object.__setattr__(self, "word_timestamps", True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TranscriptionOptions":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

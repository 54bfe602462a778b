"""Events a backend emits while it works. The GUI turns them into Qt signals; the CLI prints them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Union

from worker.transcripts.model import Segment


class Stage(str, Enum):
    QUEUED = "queued"
    DECODING = "decoding"
    LOADING_MODEL = "loading model"
    UPLOADING = "uploading"
    WAITING_GPU = "waiting for a GPU"
    TRANSCRIBING = "transcribing"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class Progress:
    stage: Stage
    fraction: float = 0.0  # 0..1 of the whole job
    chunk_index: int | None = None  # 0-based
    chunk_count: int | None = None
    message: str = ""

    def label(self) -> str:
        if self.stage is Stage.TRANSCRIBING and self.chunk_count and self.chunk_count > 1 and self.chunk_index is not None:
            return f"transcribing chunk {self.chunk_index + 1} of {self.chunk_count}"
        return self.message or self.stage.value


@dataclass(frozen=True)
class SegmentsReady:
    """New segments, in absolute time, in the order they belong."""

    segments: list[Segment]
    chunk_index: int | None = None


@dataclass(frozen=True)
class TimingReport:
    """One line of the GPU/CPU timing log: a chunk's timings dict (gpu, cold_start, model_load_s,
    inference_s, audio_s, rtf, ...). chunk_index None means a whole-job summary."""

    timings: dict[str, Any] = field(default_factory=dict)
    chunk_index: int | None = None


@dataclass(frozen=True)
class JobNote:
    """A line for the job's log: something the user should know that is not an error."""

    text: str


Event = Union[Progress, SegmentsReady, TimingReport, JobNote]
Emit = Callable[[Event], None]


def ignore_events(_event: Event) -> None:
    pass


def timing_line(timings: dict[str, Any], chunk_index: int | None = None, chunk_count: int | None = None) -> str:
    where = f"chunk {chunk_index + 1}/{chunk_count}" if chunk_index is not None and chunk_count else "job"
    parts = [
        where,
        f"gpu={timings.get('gpu', '?')}",
        f"cold_start={'yes' if timings.get('cold_start') else 'no'}",
        f"load={float(timings.get('model_load_s', 0.0)):.2f}s",
        f"inference={float(timings.get('inference_s', 0.0)):.2f}s",
        f"audio={float(timings.get('audio_s', 0.0)):.1f}s",
        f"rtf={float(timings.get('rtf', 0.0)):.3f}",
    ]
    return " ".join(parts)


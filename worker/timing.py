"""Timing log lines and per-job summaries, shared by the CLI and the window.

A chunk's timings dict (from the T4 worker or the local engine) has at least:
gpu (device name, "cpu" off-GPU), cold_start (bool), model_load_s, inference_s, audio_s, rtf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

DEFAULT_T4_DOLLARS_PER_HOUR = 0.59


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


@dataclass(frozen=True)
class JobSummary:
    wall_s: float
    audio_s: float
    compute_s: float  # GPU- (or CPU-) seconds summed over chunks
    cost_usd: float
    speed_x: float  # audio seconds per wall second
    on_gpu: bool

    def line(self) -> str:
        unit = "GPU-s" if self.on_gpu else "CPU-s"
        cost = f" cost≈${self.cost_usd:.4f}" if self.on_gpu else ""
        return (
            f"summary wall={self.wall_s:.2f}s audio={self.audio_s:.1f}s "
            f"{unit}={self.compute_s:.2f}{cost} speed={self.speed_x:.1f}x real time"
        )


def summarize(chunk_timings: Iterable[dict[str, Any]], wall_s: float, dollars_per_hour: float = DEFAULT_T4_DOLLARS_PER_HOUR) -> JobSummary:
    chunks = list(chunk_timings)
    audio_s = sum(float(t.get("audio_s", 0.0)) for t in chunks)
    compute_s = sum(float(t.get("model_load_s", 0.0)) + float(t.get("inference_s", 0.0)) for t in chunks)
    on_gpu = any(str(t.get("gpu", "cpu")).lower() != "cpu" for t in chunks)
    cost = compute_s / 3600.0 * dollars_per_hour if on_gpu else 0.0
    speed = audio_s / wall_s if wall_s > 0 else 0.0
    return JobSummary(wall_s=wall_s, audio_s=audio_s, compute_s=compute_s, cost_usd=cost, speed_x=speed, on_gpu=on_gpu)

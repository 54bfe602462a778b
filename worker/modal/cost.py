"""Timing log lines and per-job summaries, shared by the CLI and the window.

A chunk's timings dict (from the T4 worker or the local engine) has at least:
gpu (device name, "cpu" off-GPU), cold_start (bool), model_load_s, inference_s, audio_s, rtf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

DEFAULT_T4_DOLLARS_PER_HOUR = 0.59

# Paper figures for one T4 running openai-whisper in fp16, not measured here (see docs/benchmarks.md, Modal):
# model -> (seconds to load the weights from the Volume onto the GPU, inference seconds per audio second).
T4_MODEL_FIGURES: dict[str, tuple[float, float]] = {
    "tiny": (2.0, 0.02), "tiny.en": (2.0, 0.02),
    "base": (3.0, 0.03), "base.en": (3.0, 0.03),
    "small": (6.0, 0.06), "small.en": (6.0, 0.06),
    "medium": (14.0, 0.12), "medium.en": (14.0, 0.12),
    "large-v3": (25.0, 0.20), "turbo": (14.0, 0.07),
}
T4_CONTAINER_START_S = 15.0  # a cold container's start (image, CUDA) before its model loads



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


@dataclass(frozen=True)
class CostEstimate:
    """What a Modal job should cost before it runs: warm containers only (low) up to every container it
    uses starting cold (high). Idle time until containers scale down is billed too: both are lower bounds."""

    gpu_s_low: float
    gpu_s_high: float
    usd_low: float
    usd_high: float
    cold_containers: int

    def short(self) -> str:
        return f"est. ${self.usd_low:.4f}–${self.usd_high:.4f}"

    def line(self) -> str:
        return (
            f"estimate {self.gpu_s_low:.0f}–{self.gpu_s_high:.0f} GPU-s, ${self.usd_low:.4f}–${self.usd_high:.4f} "
            f"(up to {self.cold_containers} cold start{'s' if self.cold_containers != 1 else ''}; "
            "Modal also bills idle time before scale-down: a lower bound)"
        )


def estimate_modal_cost(
    duration_s: float,
    model: str,
    dollars_per_hour: float = DEFAULT_T4_DOLLARS_PER_HOUR,
    chunk_s: float = 30.0,
    max_containers: int = 8,
) -> CostEstimate:
    """The cost of transcribing `duration_s` of audio with `model` on the Modal app (T4 figures above)."""
    from worker.media.chunking import estimate_chunk_count

    load_s, rtf = T4_MODEL_FIGURES.get(model, T4_MODEL_FIGURES["large-v3"])
    inference_s = max(0.0, duration_s) * rtf
    cold = min(estimate_chunk_count(duration_s, chunk_s), max(1, int(max_containers)))
    high_s = inference_s + cold * (T4_CONTAINER_START_S + load_s)
    rate = dollars_per_hour / 3600.0
    return CostEstimate(inference_s, high_s, inference_s * rate, high_s * rate, cold)


def summarize(chunk_timings: Iterable[dict[str, Any]], wall_s: float, dollars_per_hour: float = DEFAULT_T4_DOLLARS_PER_HOUR) -> JobSummary:
    chunks = list(chunk_timings)
    audio_s = sum(float(t.get("audio_s", 0.0)) for t in chunks)
    compute_s = sum(float(t.get("model_load_s", 0.0)) + float(t.get("inference_s", 0.0)) for t in chunks)
    on_gpu = any(str(t.get("gpu", "cpu")).lower() != "cpu" for t in chunks)
    cost = compute_s / 3600.0 * dollars_per_hour if on_gpu else 0.0
    speed = audio_s / wall_s if wall_s > 0 else 0.0
    return JobSummary(wall_s=wall_s, audio_s=audio_s, compute_s=compute_s, cost_usd=cost, speed_x=speed, on_gpu=on_gpu)

"""The engine by name; each engine's heavy imports happen only when it is created."""

from __future__ import annotations

from worker.engines.base import ENGINE_NAMES, WhisperEngine


def create_engine(kind: str, model_name: str, threads: int | None = None) -> WhisperEngine:
    """"faster" (faster-whisper, int8 on CPU) or "openai" (openai-whisper, PyTorch)."""
    if kind == "faster":
        from worker.engines.faster import FasterWhisperEngine

        return FasterWhisperEngine(model_name, cpu_threads=threads)
    if kind == "openai":
        from worker.engines.openai_engine import OpenAIWhisperEngine

        return OpenAIWhisperEngine(model_name, threads=threads)
    raise ValueError(f"unknown engine {kind!r}; choose one of {', '.join(ENGINE_NAMES)}")


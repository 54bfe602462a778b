"""Whisper engines: one interface over faster-whisper (CTranslate2, the local default) and openai-whisper.

    engine = create_engine("faster", "tiny.en")
    transcript = engine.transcribe(audio, options, on_segment=print, cancel=token)

An engine is bound to one model (options.model is the caller's business: it picks the engine); the model
loads on first use and stays loaded. Timings follow the project's keys (gpu, cold_start, model_load_s,
inference_s, audio_s, rtf) plus `engine`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from worker.core.cancel import CancelToken
from worker.core.constants import SAMPLE_RATE
from worker.core.errors import TranscriptionError
from worker.core.options import TranscriptionOptions
from worker.transcripts.model import Segment, Transcript, Word

if TYPE_CHECKING:
    import numpy as np

ENGINE_NAMES = ("faster", "openai")
SILENCE_PEAK = 1e-3  # -60 dBFS: below this the whole file is silence and Whisper would only invent words

OnSegment = Callable[[Segment], None]


def is_english_only(model_name: str) -> bool:
    return model_name.endswith(".en")


def check_options(model_name: str, options: TranscriptionOptions, language_codes: frozenset[str] | None = None) -> str | None:
    """The language to force (a lowercase code, or None to detect); a clear TranscriptionError for requests
    the model cannot honour."""
    language = (options.language or "").strip().lower() or None
    if is_english_only(model_name):
        if options.task == "translate":
            raise TranscriptionError(
                f"{model_name} is an English-only model and cannot translate; choose a multilingual model "
                f"such as {model_name[:-3]}"
            )
        if language not in (None, "en"):
            raise TranscriptionError(
                f"{model_name} is an English-only model and cannot transcribe language '{language}'; "
                f"choose a multilingual model such as {model_name[:-3]}, or language 'en'"
            )
        return "en"
    if language is not None and language_codes is not None and language not in language_codes:
        raise TranscriptionError(f"unknown language code '{language}'; use a code such as en, de, fr, es or ja")
    return language


def is_silent(audio: "np.ndarray") -> bool:
    """True for no samples or digital silence (nothing above -60 dBFS)."""
    import numpy as np

    return audio.size == 0 or float(np.max(np.abs(audio))) < SILENCE_PEAK


def has_words(text: str) -> bool:
    """False for segments of only punctuation ("...", " ."), which Whisper produces on noise."""
    return any(c.isalnum() for c in text)


def make_segment(index: int, start: float, end: float, text: str, words: list[tuple[float, float, str, float]]) -> Segment:
    return Segment(
        id=index,
        start=round(float(start), 3),
        end=round(float(end), 3),
        text=text.strip(),
        words=[
            Word(start=round(float(s), 3), end=round(float(e), 3), text=w.strip(), probability=round(float(p), 4))
            for s, e, w, p in words
            if w.strip()
        ],
    )


class WhisperEngine:
    """Base: model loading, option checks, silence handling and timings. Subclasses implement _load/_run."""

    engine_name = "whisper"

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.label = model_name  # which model ran, set by _load (e.g. "tiny.en (bundled, offline)")
        self.gpu = "cpu"
        self._model: Any = None
        self._load_s = 0.0
        self._used = False

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> float:
        """Load the model if needed; returns the seconds it took (0 when it was already loaded)."""
        if self._model is not None:
            return 0.0
        started = time.perf_counter()
        self._model, self.label = self._load()
        self._load_s = time.perf_counter() - started
        self._used = False
        return self._load_s

    def transcribe(
        self,
        audio: "np.ndarray",
        options: TranscriptionOptions,
        on_segment: OnSegment | None = None,
        cancel: CancelToken | None = None,
    ) -> Transcript:
        language = self._check_options(options)
        if cancel is not None:
            cancel.raise_if_cancelled()
        self.load()
        cold_start = not self._used
        self._used = True
        audio_s = len(audio) / SAMPLE_RATE
        started = time.perf_counter()
        if is_silent(audio):
            segments: list[Segment] = []
            detected = language
        else:
            segments, detected = self._run(audio, options, language, on_segment, cancel)
        inference_s = time.perf_counter() - started
        timings = {
            "gpu": self.gpu,
            "cold_start": cold_start,
            "model_load_s": round(self._load_s if cold_start else 0.0, 3),
            "inference_s": round(inference_s, 3),
            "audio_s": round(audio_s, 3),
            "rtf": round(inference_s / audio_s, 4) if audio_s > 0 else 0.0,
            "engine": self.engine_name,
        }
        return Transcript(
            segments=segments, language=detected, duration=round(audio_s, 3), model=self.label, backend="local", timings=timings
        )

    def close(self) -> None:
        self._model = None

    # subclass hooks
    def _check_options(self, options: TranscriptionOptions) -> str | None:
        return check_options(self.model_name, options)

    def _load(self) -> tuple[Any, str]:
        raise NotImplementedError

    def _run(
        self,
        audio: "np.ndarray",
        options: TranscriptionOptions,
        language: str | None,
        on_segment: OnSegment | None,
        cancel: CancelToken | None,
    ) -> tuple[list[Segment], str | None]:
        raise NotImplementedError



"""Whisper engines: one interface over faster-whisper (CTranslate2, the local default) and openai-whisper.

    engine = create_engine("faster", "tiny.en")
    transcript = engine.transcribe(audio, options, on_segment=print, cancel=token)
    transcript = engine.transcribe_blocks(blocks, options)  # a long file, block by block (bounded memory)

An engine is bound to one model (options.model is the caller's business: it picks the engine); the model
loads on first use and stays loaded. Timings follow the project's keys (gpu, cold_start, model_load_s,
inference_s, audio_s, rtf) plus `engine`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from worker.core.cancel import CancelToken
from worker.core.constants import SAMPLE_RATE
from worker.core.errors import TranscriptionError
from worker.core.options import TranscriptionOptions
from worker.transcripts.model import Segment, Transcript, Word
from worker.transcripts.stitching import ChunkStitcher

if TYPE_CHECKING:
    import numpy as np

ENGINE_NAMES = ("faster", "openai")
SILENCE_PEAK = 1e-3  # -60 dBFS: below this the whole file is silence and Whisper would only invent words

OnSegment = Callable[[Segment], None]
Block = tuple[float, "np.ndarray"]  # a piece of a file: where it starts (seconds) and its 16 kHz mono samples


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


def release_free_heap() -> None:
    """Hand the C heap's free pages back to the system. glibc keeps what large numpy arrays and the engine's
    buffers freed (its mmap threshold rises to 32 MB after the first big free), so each block's or each VAD run's
    transient memory would stay resident and the next peak would stack on it. Elsewhere than glibc: nothing."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


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
        """One array of audio (a file, a chunk)."""
        language, cold_start = self._begin(options, cancel)
        started = time.perf_counter()
        if is_silent(audio):
            segments: list[Segment] = []
            detected = language
        else:
            segments, detected = self._run(audio, options, language, on_segment, cancel)
        return self._transcript(segments, detected, len(audio) / SAMPLE_RATE, time.perf_counter() - started, cold_start)

    def transcribe_blocks(
        self,
        blocks: Iterable[Block],
        options: TranscriptionOptions,
        on_segment: OnSegment | None = None,
        cancel: CancelToken | None = None,
    ) -> Transcript:
        """A file as consecutive blocks (cut at silences: worker.media.chunking), taken one at a time as the engine
        needs them, so that it holds only the audio it has yet to decode. Segments are in the file's time. Time
        spent waiting for a block (decoding it) is not counted as inference."""
        language, cold_start = self._begin(options, cancel)
        fed = _Fed(blocks)
        started = time.perf_counter()
        segments, detected = self._run_blocks(fed, options, language, on_segment, cancel)
        inference_s = time.perf_counter() - started - fed.wait_s
        return self._transcript(segments, detected, fed.samples / SAMPLE_RATE, inference_s, cold_start)

    def _begin(self, options: TranscriptionOptions, cancel: CancelToken | None) -> tuple[str | None, bool]:
        """The language to force (options checked), the model loaded; and whether this is its first use."""
        language = self._check_options(options)
        if cancel is not None:
            cancel.raise_if_cancelled()
        self.load()
        cold_start = not self._used
        self._used = True
        return language, cold_start

    def _transcript(self, segments: list[Segment], language: str | None, audio_s: float, inference_s: float,
                    cold_start: bool) -> Transcript:
        timings = {
            "gpu": self.gpu,
            "cold_start": cold_start,
            "model_load_s": round(self._load_s if cold_start else 0.0, 3),
            "inference_s": round(inference_s, 3),
            "audio_s": round(audio_s, 3),
            "rtf": round(inference_s / audio_s, 4) if audio_s > 0 else 0.0,
            "engine": self.engine_name,
            **self._stage_timings(),
        }
        return Transcript(
            segments=segments, language=language, duration=round(audio_s, 3), model=self.label, backend="local", timings=timings
        )

    def close(self) -> None:
        self._model = None

    # subclass hooks
    def _stage_timings(self) -> dict[str, float]:
        """Parts of the last run's inference_s worth logging (seconds by name, e.g. vad_s)."""
        return {}

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

    def _run_blocks(
        self,
        blocks: Iterable[Block],
        options: TranscriptionOptions,
        language: str | None,
        on_segment: OnSegment | None,
        cancel: CancelToken | None,
    ) -> tuple[list[Segment], str | None]:
        """Each block transcribed on its own (_run), its segments placed in the file; digital silence skipped. An
        engine that can carry its windows across the seams overrides this."""
        stitcher = ChunkStitcher()

        def place(segment: Segment, start_s: float, length_s: float) -> None:
            placed = stitcher.place(segment, start_s, length_s)
            if placed is not None and on_segment is not None:
                on_segment(placed)

        for start_s, samples in blocks:
            length_s = len(samples) / SAMPLE_RATE
            if is_silent(samples):
                continue

            def placed(segment: Segment, start_s: float = start_s, length_s: float = length_s) -> None:
                place(segment, start_s, length_s)

            _, detected = self._run(samples, options, language, placed, cancel)
            stitcher.chunk_done(start_s + length_s, {}, detected)
        return stitcher.segments, stitcher.language(language)


class _Fed:
    """The blocks, counted as they are taken: their samples, and the time spent waiting for them."""

    def __init__(self, blocks: Iterable[Block]) -> None:
        self._blocks = iter(blocks)
        self.samples = 0
        self.wait_s = 0.0

    def __iter__(self) -> Iterator[Block]:
        while True:
            started = time.perf_counter()
            block = next(self._blocks, None)
            self.wait_s += time.perf_counter() - started
            if block is None:
                return
            self.samples += len(block[1])
            yield block
            del block



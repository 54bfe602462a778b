"""faster-whisper (CTranslate2): the local default, int8 on CPU. Segments stream out as they are decoded."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from worker.engines import OnSegment, WhisperEngine, check_options, has_words, is_english_only, make_segment
from worker.errors import TranscriptionError, exception_line
from worker.events import CancelToken
from worker.options import TranscriptionOptions
from worker.transcript import Segment

if TYPE_CHECKING:
    import numpy as np


def default_cpu_threads() -> int:
    """CTranslate2 threads: 1 on a machine with two CPUs or fewer, else CTranslate2's own default (0: up to 4).

    Measured on a 2-CPU machine: tiny.en on 77 s of speech took 3.4 s with one thread
    and 5.9 s with two; one thread also leaves a CPU to the window."""
    return 1 if (os.cpu_count() or 1) <= 2 else 0


class FasterWhisperEngine(WhisperEngine):
    engine_name = "faster-whisper"

    def __init__(self, model_name: str, device: str = "cpu", compute_type: str = "int8", cpu_threads: int | None = None) -> None:
        super().__init__(model_name)
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = default_cpu_threads() if cpu_threads is None else cpu_threads
        self.gpu = "cpu" if device == "cpu" else device

    def _check_options(self, options: TranscriptionOptions) -> str | None:
        try:
            from faster_whisper.tokenizer import _LANGUAGE_CODES as codes
        except ImportError:  # a future faster-whisper: it checks the code itself
            codes = None
        return check_options(self.model_name, options, frozenset(codes) if codes else None)

    def _load(self) -> tuple[Any, str]:
        from faster_whisper import WhisperModel

        from worker.models import resolve_faster_whisper_model

        path, label = resolve_faster_whisper_model(self.model_name)
        try:
            model = WhisperModel(path, device=self.device, compute_type=self.compute_type, cpu_threads=self.cpu_threads)
        except (RuntimeError, ValueError, OSError) as exc:
            raise TranscriptionError(f"could not load {label} with faster-whisper ({exception_line(exc)})") from None
        return model, label

    def _run(
        self,
        audio: "np.ndarray",
        options: TranscriptionOptions,
        language: str | None,
        on_segment: OnSegment | None,
        cancel: CancelToken | None,
    ) -> tuple[list[Segment], str | None]:
        # a multilingual model detects the language of every 30 s window (not once for the file) and does not
        # condition on the previous window's text, which would keep it in the first language (or, after a
        # switch, end the window after one sentence and skip the rest of it)
        multilingual = not is_english_only(self.model_name)
        generator, info = self._model.transcribe(
            audio,
            language=language,
            task=options.task,
            beam_size=max(1, options.beam_size),
            word_timestamps=options.word_timestamps,
            initial_prompt=options.initial_prompt or None,
            vad_filter=False,
            multilingual=multilingual and language is None,
            condition_on_previous_text=not multilingual,
        )
        segments: list[Segment] = []
        try:
            for produced in generator:  # decoding happens as the generator advances
                if cancel is not None:
                    cancel.raise_if_cancelled()
                if not has_words(produced.text):
                    continue
                words = [(w.start, w.end, w.word, w.probability) for w in produced.words or []]
                segment = make_segment(len(segments), produced.start, produced.end, produced.text, words)
                segments.append(segment)
                if on_segment is not None:
                    on_segment(segment)
        finally:
            generator.close()
        return segments, info.language

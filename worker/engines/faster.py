"""faster-whisper (CTranslate2): the local default, int8 on CPU.

Speech is found with faster-whisper's bundled Silero VAD (an ONNX file inside the package: offline), cut into
windows of up to 30 s at pauses, and the windows are encoded and decoded in batches
(`BatchedInferencePipeline`): one batched encoder call keeps both CPU cores busy, and silence is never decoded.
Each window is decoded as text only (no timestamp tokens: fewer tokens, and no early end before the window's
last sentence), then its words are aligned to the audio and the window is cut into sentences. Segments stream
out batch by batch, in order."""

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

# Windows decoded together. On 2 CPUs, 4 decodes as fast as 8 or 16 (measured on 77 s of speech) and streams
# segments (and progress) twice as often on long files.
BATCH_SIZE = 4
MAX_CPU_THREADS = 4  # CTranslate2's own default cap


def default_cpu_threads() -> int:
    """CTranslate2 threads: every CPU this process may run on, up to 4.

    Measured on a 2-CPU machine with batched decoding: the batched encoder runs 1.8x faster on two threads than
    on one, and decoding is no slower."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 1
    return max(1, min(usable, MAX_CPU_THREADS))


class FasterWhisperEngine(WhisperEngine):
    engine_name = "faster-whisper"

    def __init__(self, model_name: str, device: str = "cpu", compute_type: str = "int8", cpu_threads: int | None = None) -> None:
        super().__init__(model_name)
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = default_cpu_threads() if cpu_threads is None else cpu_threads
        self.gpu = "cpu" if device == "cpu" else device
        self._pipeline: Any = None

    def _check_options(self, options: TranscriptionOptions) -> str | None:
        try:
            from faster_whisper.tokenizer import _LANGUAGE_CODES as codes
        except ImportError:  # a future faster-whisper: it checks the code itself
            codes = None
        return check_options(self.model_name, options, frozenset(codes) if codes else None)

    def _load(self) -> tuple[Any, str]:
        from faster_whisper import BatchedInferencePipeline, WhisperModel

        from worker.models import resolve_faster_whisper_model

        path, label = resolve_faster_whisper_model(self.model_name)
        try:
            model = WhisperModel(path, device=self.device, compute_type=self.compute_type, cpu_threads=self.cpu_threads)
        except (RuntimeError, ValueError, OSError) as exc:
            raise TranscriptionError(f"could not load {label} with faster-whisper ({exception_line(exc)})") from None
        self._pipeline = BatchedInferencePipeline(model)
        return model, label

    def close(self) -> None:
        self._pipeline = None
        super().close()

    def _run(
        self,
        audio: "np.ndarray",
        options: TranscriptionOptions,
        language: str | None,
        on_segment: OnSegment | None,
        cancel: CancelToken | None,
    ) -> tuple[list[Segment], str | None]:
        # faster-whisper's VAD windows hold speech only (windows that kept the pauses between speech parts made
        # tiny.en repeat a sentence of repeated speech, measured). A multilingual model detects the language of
        # every window (not once for the file); windows never condition on the previous one's text.
        generator, info = self._pipeline.transcribe(
            audio,
            language=language,
            task=options.task,
            beam_size=max(1, options.beam_size),
            word_timestamps=True,  # the segments' times come from the words
            initial_prompt=options.initial_prompt or None,
            without_timestamps=True,
            multilingual=not is_english_only(self.model_name) and language is None,
            batch_size=BATCH_SIZE,
        )
        segments: list[Segment] = []
        try:
            for window in generator:  # decoding happens as the generator advances, a batch at a time
                for start, end, text, words in sentences(window):
                    if cancel is not None:
                        cancel.raise_if_cancelled()
                    if not has_words(text):
                        continue
                    if segments:  # aligned words may reach a few ms back over the previous window's end
                        start = max(start, segments[-1].end)
                    segment = make_segment(len(segments), start, max(start, end), text,
                                           words if options.word_timestamps else [])
                    segments.append(segment)
                    if on_segment is not None:
                        on_segment(segment)
            if cancel is not None:
                cancel.raise_if_cancelled()
        finally:
            generator.close()
        return segments, info.language


SENTENCE_ENDS = (".", "?", "!", "\u2026", "\u3002", "\uff1f", "\uff01")  # also the CJK full stop and marks
PAUSE_S = 1.0  # a silence this long between words ends a segment too
MAX_SEGMENT_S = 12.0  # a longer sentence is cut after a comma, or at its longest pause
CLAUSE_ENDS = (",", ";", ":", "\uff0c", "\u3001")

WordTuple = tuple[float, float, str, float]


def sentences(window: Any) -> list[tuple[float, float, str, list[WordTuple]]]:
    """A decoded window (a faster-whisper Segment with words) as (start, end, text, words) per sentence."""
    words = [(w.start, w.end, w.word, w.probability) for w in window.words or []]
    if not words:
        return [(window.start, window.end, window.text, [])]
    pieces: list[list[WordTuple]] = [[]]
    for index, word in enumerate(words):
        if pieces[-1] and word[0] - words[index - 1][1] >= PAUSE_S:
            pieces.append([])
        pieces[-1].append(word)
        if word[2].strip().endswith(SENTENCE_ENDS):
            pieces.append([])
    cut = [part for piece in pieces if piece for part in _shortened(piece)]
    return [(piece[0][0], piece[-1][1], "".join(w[2] for w in piece).strip(), piece) for piece in cut]


def _shortened(words: list[WordTuple]) -> list[list[WordTuple]]:
    """Cut a run of words longer than MAX_SEGMENT_S after its last comma inside the limit (else at its longest
    pause), again until every part fits."""
    if words[-1][1] - words[0][0] <= MAX_SEGMENT_S or len(words) < 2:
        return [words]
    inside = [i for i in range(len(words) - 1) if words[i][1] - words[0][0] <= MAX_SEGMENT_S] or [0]
    commas = [i for i in inside if words[i][2].strip().endswith(CLAUSE_ENDS)]
    at = commas[-1] if commas else max(inside, key=lambda i: words[i + 1][0] - words[i][1])
    return [words[: at + 1], *_shortened(words[at + 1 :])]


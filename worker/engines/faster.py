"""faster-whisper (CTranslate2): the local default, int8 on CPU.

Speech is found with faster-whisper's bundled Silero VAD (an ONNX file inside the package: offline), joined
into windows of up to 30 s of speech, and the windows are encoded and decoded in batches
(`BatchedInferencePipeline`): one batched encoder call keeps both CPU cores busy, and silence is never decoded.
Each window is decoded as text only (no timestamp tokens: fewer tokens), then its words are aligned to the audio
and the window is cut into sentences. Batched decoding has no second pass: when the model ends a window early,
the rest of its speech would be lost. So speech that no aligned word covers is decoded again, clip by clip, with
the sequential decoder, and its sentences are merged in time order. Segments stream out window by window, in
order."""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING, Any

from worker.core.cancel import CancelToken
from worker.core.constants import SAMPLE_RATE
from worker.core.errors import TranscriptionError, exception_line
from worker.core.options import TranscriptionOptions
from worker.engines.base import OnSegment, WhisperEngine, check_options, has_words, is_english_only, make_segment
from worker.transcripts.model import Segment

if TYPE_CHECKING:
    import numpy as np

# Windows decoded together. On 2 CPUs, 4 decodes as fast as 8 or 16 (measured on 77 s of speech) and streams
# segments (and progress) twice as often on long files.
BATCH_SIZE = 4
WINDOW_S = 30  # longest window (Whisper's input)
MIN_SILENCE_MS = 160  # a pause this long may end a window (the pipeline's default)
# Batched decoding has no second pass: tiny.en sometimes ends a window early and skips the rest of its speech
# (15-20 s on the 10 min benchmark file). Speech this long that no aligned word covers is decoded again.
MISSED_SPEECH_S = 1.0
WORD_REACH_S = 0.3  # how far around an aligned word its speech may reach (alignment error, VAD padding)
FRAMES_PER_SECOND = 100  # Whisper's mel frames
LONGEST_WORD_S = 1.5  # an aligned word stretched longer (over speech the window skipped) covers only this much
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

        from worker.engines.weights import resolve_faster_whisper_model

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
        # Windows hold speech only, as faster-whisper's own VAD windows (windows that kept the pauses between
        # speech parts made tiny.en repeat a sentence of repeated speech, measured): the speech regions are found
        # here, once, because the second pass needs them too, and joined into windows of up to WINDOW_S of
        # speech. A multilingual model detects the language of every window (not once for the file); windows
        # never condition on the previous one's text.
        import numpy as np
        from faster_whisper.transcribe import restore_speech_timestamps
        from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

        found_speech = get_speech_timestamps(audio, VadOptions(max_speech_duration_s=WINDOW_S,
                                                               min_silence_duration_ms=MIN_SILENCE_MS))
        if not found_speech:
            return [], language
        speech = [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in found_speech]
        speech_audio = np.concatenate([audio[s["start"] : s["end"]] for s in found_speech])
        # each window's start on the speech-only time line (the speech before it), in seconds
        window_starts = [chunk["offset"] for chunk in collect_chunks(audio, found_speech, max_duration=WINDOW_S)[1]]
        window_ends = window_starts[1:] + [len(speech_audio) / SAMPLE_RATE]
        speech_before = list(itertools.accumulate((end - start for start, end in speech), initial=0.0))
        decode = dict(language=language, task=options.task, beam_size=max(1, options.beam_size),
                      word_timestamps=True,  # the segments' times come from the words
                      initial_prompt=options.initial_prompt or None)
        decoded, info = self._pipeline.transcribe(
            speech_audio,
            **decode,
            without_timestamps=True,
            multilingual=not is_english_only(self.model_name) and language is None,
            clip_timestamps=[{"start": a, "end": b} for a, b in zip(window_starts, window_ends)],
            batch_size=BATCH_SIZE,
        )
        generator = restore_speech_timestamps(decoded, found_speech, SAMPLE_RATE)  # back to the file's times
        segments: list[Segment] = []
        words_so_far: list[WordTuple] = []
        checked = 0  # speech regions before this one have been checked for speech no word covers

        def emit(pieces: list[tuple[float, float, str, list[WordTuple]]]) -> None:
            for start, end, text, words in sorted(pieces, key=lambda piece: piece[0]):
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

        def second_pass(window: Any) -> list[tuple[float, float, str, list[WordTuple]]]:
            """Decode again, one clip at a time, the speech of this window and those before it (None: of all) that
            no word of the batched pass covers."""
            nonlocal checked
            until = float("inf")
            if window is not None:  # `seek`: the window's start on the speech-only time line, in frames
                index = min(range(len(window_starts)),
                            key=lambda i: abs(window_starts[i] - window.seek / FRAMES_PER_SECOND))
                until = window_ends[index]
            regions = [r for i, r in enumerate(speech[checked:], checked) if speech_before[i] < until - 1e-3]
            checked += len(regions)
            pieces = []
            for start, end in missed_speech(regions, words_so_far):
                if cancel is not None:
                    cancel.raise_if_cancelled()
                clip = audio[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
                found, _ = self._model.transcribe(clip, **decode, condition_on_previous_text=False, vad_filter=False)
                new: list[WordTuple] = []
                for part in found:  # window by window, as the sequential decoder goes
                    if cancel is not None:
                        cancel.raise_if_cancelled()
                    new += [(start + w.start, start + w.end, w.word, w.probability) for w in part.words or []]
                new = [w for w in new if not _inside_any((w[0] + w[1]) / 2, words_so_far)]
                if new and not _said_already(new, [w for w in words_so_far if start - 3 <= w[0] <= end + 3]):
                    pieces += sentences_of(new)
                    words_so_far.extend(new)
            return pieces

        try:
            for window in generator:  # decoding happens as the generator advances, a batch at a time
                pieces = sentences(window)
                words_so_far.extend(w for *_, words in pieces for w in words)
                emit(pieces + second_pass(window))
            emit(second_pass(None))
            if cancel is not None:
                cancel.raise_if_cancelled()
        finally:
            generator.close()
            decoded.close()
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
    return sentences_of(words)


def sentences_of(words: list[WordTuple]) -> list[tuple[float, float, str, list[WordTuple]]]:
    """Aligned words, in order, cut into (start, end, text, words) sentences."""
    pieces: list[list[WordTuple]] = [[]]
    for index, word in enumerate(words):
        if pieces[-1] and word[0] - words[index - 1][1] >= PAUSE_S:
            pieces.append([])
        pieces[-1].append(word)
        if word[2].strip().endswith(SENTENCE_ENDS):
            pieces.append([])
    cut = [part for piece in pieces if piece for part in _shortened(piece)]
    return [(piece[0][0], piece[-1][1], "".join(w[2] for w in piece).strip(), piece) for piece in cut]


def missed_speech(regions: list[tuple[float, float]], words: list[WordTuple]) -> list[tuple[float, float]]:
    """The parts of the speech regions (start, end) that no word reaches, MISSED_SPEECH_S or more of speech in
    all; parts that only silence keeps apart are joined into one clip, so that it is decoded with its context."""
    reached = sorted((w[0] - WORD_REACH_S, min(w[1], w[0] + LONGEST_WORD_S) + WORD_REACH_S) for w in words)
    missed: list[tuple[float, float]] = []
    for start, end in regions:
        at = start
        for lo, hi in reached:
            if hi <= at or lo >= end:
                continue
            if lo > at:
                missed.append((at, lo))
            at = max(at, hi)
        if at < end:
            missed.append((at, end))
    joined: list[list[float]] = []  # [start, end, seconds of missed speech]
    for start, end in missed:
        if joined and end - joined[-1][0] <= WINDOW_S \
                and not any(joined[-1][1] <= (w[0] + w[1]) / 2 <= start for w in words):
            joined[-1][1:] = [end, joined[-1][2] + end - start]
        else:
            joined.append([start, end, end - start])
    return [(start, end) for start, end, seconds in joined if seconds >= MISSED_SPEECH_S]


def _said_already(new: list[WordTuple], near: list[WordTuple]) -> bool:
    """Whether most of the new words' three-word runs are among the words the first pass put near them (it had
    the text but squeezed its alignment into a moment, which looks like skipped speech)."""
    def runs(words: list[WordTuple]) -> list[tuple[str, ...]]:
        plain = ["".join(c for c in w[2].lower() if c.isalnum()) for w in words]
        return [tuple(plain[i : i + 3]) for i in range(max(1, len(plain) - 2))]

    new_runs, old_runs = runs(new), set(runs(near)) if near else set()
    return sum(run in old_runs for run in new_runs) * 2 > len(new_runs)


def _inside_any(t: float, words: list[WordTuple]) -> bool:
    return any(w[0] <= t <= w[1] for w in words)


def _shortened(words: list[WordTuple]) -> list[list[WordTuple]]:
    """Cut a run of words longer than MAX_SEGMENT_S after its last comma inside the limit (else at its longest
    pause), again until every part fits."""
    if words[-1][1] - words[0][0] <= MAX_SEGMENT_S or len(words) < 2:
        return [words]
    inside = [i for i in range(len(words) - 1) if words[i][1] - words[0][0] <= MAX_SEGMENT_S] or [0]
    commas = [i for i in inside if words[i][2].strip().endswith(CLAUSE_ENDS)]
    at = commas[-1] if commas else max(inside, key=lambda i: words[i + 1][0] - words[i][1])
    return [words[: at + 1], *_shortened(words[at + 1 :])]


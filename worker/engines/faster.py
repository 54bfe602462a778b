"""faster-whisper (CTranslate2): the local default, int8 on CPU.

Speech is found with faster-whisper's bundled Silero VAD (an ONNX file inside the package: offline), joined
into windows of up to 30 s of speech, and the windows are encoded and decoded in batches
(`BatchedInferencePipeline`): one batched encoder call keeps both CPU cores busy, and silence is never decoded.
Each window is decoded as text only (no timestamp tokens: fewer tokens), then its words are aligned to the audio
and the window is cut into sentences. Batched decoding has no second pass: when the model ends a window early,
the rest of its speech would be lost. So speech that no aligned word covers is decoded again, clip by clip, with
the sequential decoder, and its sentences are merged in time order. Segments stream out window by window, in
order.

Memory follows the audio given, not more: the VAD runs on bounded batches of frames, and the windows are offsets
into the speech, not copies of it. The local backend hands long files over in blocks (worker.backends.local)."""

from __future__ import annotations

import itertools
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Iterable

from worker.core.cancel import CancelToken
from worker.core.constants import SAMPLE_RATE
from worker.core.errors import TranscriptionError, exception_line
from worker.core.options import TranscriptionOptions
from worker.engines.base import (
    Block,
    OnSegment,
    WhisperEngine,
    check_options,
    has_words,
    is_english_only,
    is_silent,
    make_segment,
    release_free_heap,
)
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
REDECODES = 3  # a missed clip is decoded again at most this often, each time from where the last decoding stopped
FRAMES_PER_SECOND = 100  # Whisper's mel frames
LONGEST_WORD_S = 1.5  # an aligned word stretched longer (over speech the window skipped) covers only this much
MAX_CPU_THREADS = 4  # CTranslate2's own default cap
# A file given in blocks: windows are decoded once BATCH_SIZE of them are complete, so the blocks held span about
# 2.5 minutes of dense speech. Sparser speech would keep more of the file waiting: past this, what there is is
# decoded (its windows part-filled).
HOLD_S = 300.0
# Silero VAD frames (512 samples, 32 ms) per ONNX run. faster-whisper runs up to 10,000 at once (320 s of audio),
# which held about 200 MB of activations on a 10-minute block; the probabilities do not depend on the batch size.
VAD_FRAMES_PER_RUN = 1000


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
        self.hold_s = HOLD_S
        self._pipeline: Any = None
        self._stage_s: dict[str, float] = {}

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
        if self.device == "cpu":
            model.model = _WindowByWindow(model.model)
        self._pipeline = BatchedInferencePipeline(model)
        return model, label

    def close(self) -> None:
        self._pipeline = None
        super().close()

    def _stage_timings(self) -> dict[str, float]:
        return {name: round(seconds, 3) for name, seconds in self._stage_s.items()}

    def _run(
        self,
        audio: "np.ndarray",
        options: TranscriptionOptions,
        language: str | None,
        on_segment: OnSegment | None,
        cancel: CancelToken | None,
    ) -> tuple[list[Segment], str | None]:
        return self._run_blocks([(0.0, audio)], options, language, on_segment, cancel)  # one block: the whole file

    def _run_blocks(
        self,
        blocks: Iterable[Block],
        options: TranscriptionOptions,
        language: str | None,
        on_segment: OnSegment | None,
        cancel: CancelToken | None,
    ) -> tuple[list[Segment], str | None]:
        # Windows hold speech only, as faster-whisper's own VAD windows (windows that kept the pauses between
        # speech parts made tiny.en repeat a sentence of repeated speech, measured): the speech regions are found
        # here, block by block, because the second pass needs them too, and joined into windows of up to
        # WINDOW_S of speech across the blocks' seams, exactly as over the whole file. Windows are decoded
        # BATCH_SIZE at a time as soon as that many are complete, so a file of any length holds only the blocks
        # its undecoded speech lies in. A multilingual model detects the language of every window (not once for
        # the file); windows never condition on the previous one's text.
        stage_s = self._stage_s = {"vad_s": 0.0, "second_pass_s": 0.0}  # parts of the inference, for the log
        held = _HeldAudio(stage_s)
        if isinstance(self._model.model, _WindowByWindow):
            self._model.model.release_heap = held.release_free_heap
        segments: list[Segment] = []
        words_so_far: list[WordTuple] = []
        decode = dict(language=language, task=options.task, beam_size=max(1, options.beam_size),
                      word_timestamps=True,  # the segments' times come from the words
                      initial_prompt=options.initial_prompt or None)
        multilingual = not is_english_only(self.model_name) and language is None
        detected: list[str] = []  # the language of the first batch (the file's, as faster-whisper reports it)

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

        def decode_windows(regions: list[dict[str, int]]) -> None:
            """Decode the windows these regions make (BATCH_SIZE of them, or the last few), then decode again the
            speech no word of theirs covers."""
            import numpy as np
            from faster_whisper.transcribe import restore_speech_timestamps

            words_so_far[:] = [w for w in words_so_far if w[1] >= regions[0]["start"] / SAMPLE_RATE - NEARBY_S]
            speech = [(r["start"] / SAMPLE_RATE, r["end"] / SAMPLE_RATE) for r in regions]
            speech_audio = np.concatenate([held.samples(r["start"], r["end"]) for r in regions])
            window_starts = _window_starts(regions)
            window_ends = window_starts[1:] + [len(speech_audio) / SAMPLE_RATE]
            speech_before = list(itertools.accumulate((end - start for start, end in speech), initial=0.0))
            checked = 0  # regions before this one have been checked for speech no word covers
            decoded, info = self._pipeline.transcribe(
                speech_audio,
                **{**decode, "language": language or (detected[0] if detected else None)},
                without_timestamps=True,
                multilingual=multilingual,
                clip_timestamps=[{"start": a, "end": b} for a, b in zip(window_starts, window_ends)],
                batch_size=BATCH_SIZE,
            )
            detected[:] = detected or [info.language]

            def second_pass(window: Any) -> list[tuple[float, float, str, list[WordTuple]]]:
                """Decode again, one clip at a time, the speech of this window and those before it (None: of all)
                that no word of the batched pass covers."""
                nonlocal checked
                until = float("inf")
                if window is not None:  # `seek`: the window's start on the speech-only time line, in frames
                    index = min(range(len(window_starts)),
                                key=lambda i: abs(window_starts[i] - window.seek / FRAMES_PER_SECOND))
                    until = window_ends[index]
                unchecked = [r for i, r in enumerate(speech[checked:], checked) if speech_before[i] < until - 1e-3]
                checked += len(unchecked)
                pieces = []
                missed = missed_speech(unchecked, words_so_far)
                if missed:
                    held.release_free_heap()  # the batch's buffers, before the sequential decoder takes its own
                for start, end in missed:
                    for _ in range(REDECODES):  # the sequential decoder, too, may stop early: go on after its end
                        if cancel is not None:
                            cancel.raise_if_cancelled()
                        started = time.perf_counter()
                        clip = held.samples(int(start * SAMPLE_RATE), int(end * SAMPLE_RATE))
                        found, _ = self._model.transcribe(clip, **decode, condition_on_previous_text=False,
                                                          vad_filter=False)
                        decoded_words: list[WordTuple] = []
                        for part in found:  # window by window, as the sequential decoder goes
                            if cancel is not None:
                                cancel.raise_if_cancelled()
                            decoded_words += [(start + w.start, start + w.end, w.word, w.probability)
                                              for w in part.words or []]
                        stage_s["second_pass_s"] += time.perf_counter() - started
                        new = [w for w in decoded_words if not _inside_any((w[0] + w[1]) / 2, words_so_far)]
                        if new and not _said_already(new, [w for w in words_so_far if start - 3 <= w[0] <= end + 3]):
                            pieces += sentences_of(new)
                            words_so_far.extend(new)
                        if not decoded_words:
                            break
                        resume = decoded_words[-1][1]  # where this decoding stopped
                        rest = missed_speech([r for r in unchecked if r[1] > resume and r[0] < end], words_so_far)
                        after = [(max(a, resume), b) for a, b in rest if b - max(a, resume) >= MISSED_SPEECH_S]
                        if not after:
                            break
                        start, end = after[0][0], after[-1][1]
                return pieces

            generator = restore_speech_timestamps(decoded, regions, SAMPLE_RATE)  # back to the file's times
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
                held.release_free_heap()  # the batch's features and the engine's buffers

        def decode_all() -> None:
            windows = _windows(held.undecoded)
            for first in range(0, len(windows), BATCH_SIZE):
                decode_windows([r for window in windows[first : first + BATCH_SIZE] for r in window])
            held.decoded(None)

        for start_s, samples in blocks:
            if cancel is not None:
                cancel.raise_if_cancelled()
            held.add(round(start_s * SAMPLE_RATE), samples)
            del samples
            while len(windows := _windows(held.undecoded)) > BATCH_SIZE:  # the last may still grow
                decode_windows([r for window in windows[:BATCH_SIZE] for r in window])
                held.decoded(windows[BATCH_SIZE][0]["start"])
            if held.span_s > self.hold_s:  # sparse speech: its windows would span too much of the file
                decode_all()
        decode_all()
        return segments, detected[0] if detected else language


NEARBY_S = 5.0  # the first pass's words kept for the second pass before the speech it checks


class _HeldAudio:
    """The blocks of a file from the first speech not yet decoded on (the second pass cuts its clips from them
    too), and the speech regions the VAD found in them, in file samples."""

    def __init__(self, stage_s: dict[str, float]) -> None:
        self._blocks: list[tuple[int, "np.ndarray"]] = []
        self.undecoded: list[dict[str, int]] = []
        self._stage_s = stage_s
        self.count = 0  # blocks taken

    def release_free_heap(self) -> None:
        """Free heap pages back to the system once the file is longer than one block: handing them back and
        touching them again cost a one-block file 0.1-0.3 s of CPU in 4 (71 s of speech), for no memory it needs."""
        if self.count > 1:
            release_free_heap()

    def add(self, start: int, samples: "np.ndarray") -> None:
        self.count += 1
        if not is_silent(samples):  # digital silence: Whisper would only invent words
            started = time.perf_counter()
            found = find_speech(samples)
            self.release_free_heap()  # the VAD's copies of the block (about twice its size)
            self._stage_s["vad_s"] += time.perf_counter() - started
            self.undecoded += [{"start": start + r["start"], "end": start + r["end"]} for r in found]
            self._blocks.append((start, samples))
        self._let_go()

    def decoded(self, until: int | None) -> None:
        """The speech before sample `until` (None: all of it) is decoded: let go of its regions and blocks."""
        self.undecoded = [r for r in self.undecoded if until is not None and r["start"] >= until]
        self._let_go()

    @property
    def span_s(self) -> float:
        """The file time the blocks held cover."""
        if not self._blocks:
            return 0.0
        first, (last, samples) = self._blocks[0][0], self._blocks[-1]
        return (last + len(samples) - first) / SAMPLE_RATE

    def _let_go(self) -> None:
        keep_from = self.undecoded[0]["start"] if self.undecoded else None
        self._blocks = [(at, samples) for at, samples in self._blocks
                        if keep_from is not None and at + len(samples) > keep_from]

    def samples(self, start: int, end: int) -> "np.ndarray":
        """The file's samples [start, end), from the blocks held (a range may span a seam)."""
        import numpy as np

        pieces = [samples[max(0, start - at) : max(0, end - at)] for at, samples in self._blocks
                  if at < end and at + len(samples) > start]
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces) if pieces else np.zeros(0, np.float32)


def _windows(regions: list[dict[str, int]]) -> list[list[dict[str, int]]]:
    """The speech regions joined into windows of up to WINDOW_S of speech, in order, as faster-whisper joins them."""
    starts = _window_starts(regions)
    windows: list[list[dict[str, int]]] = [[] for _ in starts] if regions else []
    before = 0.0
    for region in regions:
        index = max(i for i, start in enumerate(starts) if start <= before + 1e-9)
        windows[index].append(region)
        before += (region["end"] - region["start"]) / SAMPLE_RATE
    return windows


def _window_starts(regions: list[dict[str, int]]) -> list[float]:
    """Each window's start on the speech-only time line of these regions (the speech before it), in seconds;
    faster-whisper's collect_chunks reads them from the timestamps alone (given no samples, it copies none)."""
    import numpy as np
    from faster_whisper.vad import collect_chunks

    if not regions:
        return []
    return [chunk["offset"] for chunk in collect_chunks(np.zeros(0, np.float32), regions, max_duration=WINDOW_S)[1]]


class _WindowByWindow:
    """CTranslate2's Whisper model on the CPU, encoding and aligning a batch one window at a time; decoding (beam
    search) stays batched. Encoding 4 windows at once held their self-attention (6 heads x 1500 x 1500 floats
    each, ~330 MB in all) at the same time; one at a time gives the same numbers, is no slower on 2 CPUs (CPU
    17.7-18.8 s against 19.7-20.4 s on 5 minutes of speech, measured) and peaks ~160 MB lower."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.release_heap: Callable[[], None] = lambda: None  # set by the engine for each file

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def encode(self, features: Any, to_cpu: bool = False) -> Any:
        if features.shape[0] <= 1:
            return self.model.encode(features, to_cpu=to_cpu)
        import numpy as np

        each = [np.asarray(self.model.encode(window, to_cpu=to_cpu)) for window in _windows_of(features)]
        self.release_heap()  # the encoder's buffers, before the batch's beam search takes its own
        return _storage(np.concatenate(each))

    def align(self, features: Any, start_sequence: Any, text_tokens: list[Any], num_frames: Any, **options: Any) -> list[Any]:
        if features.shape[0] <= 1:
            return self.model.align(features, start_sequence, text_tokens, num_frames, **options)
        frames = num_frames if isinstance(num_frames, list) else [num_frames] * len(text_tokens)
        return [result for window, tokens, count in zip(_windows_of(features), text_tokens, frames)
                for result in self.model.align(window, start_sequence, [tokens], [count], **options)]


def _windows_of(batch: Any) -> list[Any]:
    """A CTranslate2 batch (StorageView on the CPU) as one StorageView per window."""
    import numpy as np

    array = np.asarray(batch)
    return [_storage(array[i : i + 1]) for i in range(array.shape[0])]


def _storage(array: "np.ndarray") -> Any:
    import ctranslate2
    import numpy as np

    return ctranslate2.StorageView.from_array(np.ascontiguousarray(array))


def find_speech(audio: "np.ndarray") -> list[dict[str, int]]:
    """faster-whisper's Silero VAD speech regions ({"start", "end"} in samples) with this engine's settings, the
    model run on at most VAD_FRAMES_PER_RUN frames at a time."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps, get_vad_model

    model = get_vad_model()  # one per process (cached by faster-whisper)
    if not isinstance(model.session, _BoundedVadRuns):
        model.session = _BoundedVadRuns(model.session)
    return get_speech_timestamps(audio, VadOptions(max_speech_duration_s=WINDOW_S, min_silence_duration_ms=MIN_SILENCE_MS))


class _BoundedVadRuns:
    """The VAD model's ONNX session, asked for at most VAD_FRAMES_PER_RUN frames per run (its LSTM state carried
    from one run to the next, as faster-whisper carries it between its own batches)."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def run(self, output_names: Any, feeds: dict[str, Any]) -> list[Any]:
        import numpy as np

        frames, state, cell = feeds["input"], feeds["h"], feeds["c"]
        outputs = []
        for start in range(0, max(1, len(frames)), VAD_FRAMES_PER_RUN):
            output, state, cell = self.session.run(
                output_names, {**feeds, "input": frames[start : start + VAD_FRAMES_PER_RUN], "h": state, "c": cell})
            outputs.append(output)
        return [np.concatenate(outputs) if len(outputs) > 1 else outputs[0], state, cell]


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


"""The engine over live audio: faster-whisper (tiny.en by default) runs pass after pass over the unfinished audio,
LocalAgreement (worker.live.agreement) decides which words are final, and completed sentences become lines.

StreamingTranscriber is the single-threaded core (add_audio, step); LiveStream runs it on a thread of its own so
that whoever captures never waits: add_audio() only appends to a list. When the engine falls behind (a slow pass,
a busy CPU), the audio that arrived meanwhile is taken in whole by the next pass: nothing is dropped, the backlog
is caught up, and each update says how far behind the text is (lag_s).

A pass waits for MIN_STEP_S of new audio. Speech is found with faster-whisper's Silero VAD: when the audio
after the final words holds none, one more pass makes the tentative words final (the speaker paused) and the
silence is let go; audio is only let go once every word in it is final. The buffer of unfinished audio
is cut at the end of the last final sentence once it is longer than TRIM_S (at the last final word past
MAX_BUFFER_S: Whisper hears 30 s at most), and the final text before it is the next passes' prompt."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from worker.core.constants import SAMPLE_RATE
from worker.core.errors import TranscriptionError, exception_line
from worker.engines.base import check_options, make_segment
from worker.engines.faster import CLAUSE_ENDS, MAX_SEGMENT_S, PAUSE_S, SENTENCE_ENDS
from worker.live.agreement import LocalAgreement, WordTuple
from worker.transcripts.model import Segment

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

MIN_STEP_S = 1.0  # new audio a pass waits for
SETTLE_S = 1.5  # a word this close to the end of the audio heard stays tentative
TRIM_S = 15.0
MAX_BUFFER_S = 25.0
KEEP_AFTER_SILENCE_S = 1.0  # of audio without speech, the end is kept (a word may be starting)
PROMPT_CHARS = 200  # of final text, given to each pass as what came before
MIN_SILENCE_MS = 500  # VAD: a shorter pause does not split speech
STOP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class LiveUpdate:
    final: tuple[WordTuple, ...]  # words that became final with this pass: append them
    tentative: tuple[WordTuple, ...]  # words that may still change: they replace those shown before
    lines: tuple[Segment, ...]  # sentences completed with this pass
    heard_s: float  # audio received when the update was given
    done_s: float  # audio the engine has been through
    finished: bool = False  # the last update: everything heard is final

    @property
    def lag_s(self) -> float:
        """How far the text is behind what was heard, when this pass ended."""
        return max(0.0, self.heard_s - self.done_s)


def load_model(model_name: str, threads: int | None = None) -> tuple[Any, str]:
    """A faster-whisper model for live passes (int8 on CPU, as the local engine loads it) and its label."""
    from faster_whisper import WhisperModel

    from worker.engines.faster import default_cpu_threads
    from worker.engines.weights import resolve_faster_whisper_model

    path, label = resolve_faster_whisper_model(model_name)
    try:
        model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=threads or default_cpu_threads())
    except (RuntimeError, ValueError, OSError) as exc:
        raise TranscriptionError(f"could not load {label} with faster-whisper ({exception_line(exc)})") from None
    return model, label


@dataclass
class _Lines:
    """Final words gathered into lines (segments): a line ends at a sentence end, a pause of PAUSE_S, a clause
    end past MAX_SEGMENT_S, any word past twice that, or when told (silence, stop)."""

    done: list[Segment] = field(default_factory=list)
    open: list[WordTuple] = field(default_factory=list)

    def add(self, words: list[WordTuple], close: bool = False) -> list[Segment]:
        closed: list[Segment] = []
        for word in words:
            if self.open and word[0] - self.open[-1][1] >= PAUSE_S:
                closed += self._close()
            self.open.append(word)
            text = word[2].strip()
            length = word[1] - self.open[0][0]
            if text.endswith(SENTENCE_ENDS) or (text.endswith(CLAUSE_ENDS) and length > MAX_SEGMENT_S) \
                    or length > 2 * MAX_SEGMENT_S:  # speech without punctuation or pauses still makes lines
                closed += self._close()
        return closed + (self._close() if close else [])

    def _close(self) -> list[Segment]:
        if not self.open:
            return []
        words, self.open = self.open, []
        text = "".join(w[2] for w in words)
        segment = make_segment(len(self.done), words[0][0], words[-1][1], text, words)
        self.done.append(segment)
        return [segment]


class StreamingTranscriber:
    """add_audio() then step(), from one thread. `model` is a faster_whisper.WhisperModel (load_model)."""

    def __init__(self, model: Any, model_name: str, language: str | None = None, beam_size: int = 1) -> None:
        import numpy as np

        from worker.core.options import TranscriptionOptions

        self.model = model
        self.language = check_options(model_name, TranscriptionOptions(model=model_name, language=language))
        self.beam_size = beam_size
        self.agreement = LocalAgreement()
        self.lines = _Lines()
        self.buffer = np.zeros(0, dtype=np.float32)  # the unfinished audio
        self.buffer_start = 0.0  # where it starts on the recording's clock
        self.heard = 0  # samples received
        self.detected_language: str | None = self.language

    @property
    def heard_s(self) -> float:
        return self.heard / SAMPLE_RATE

    def add_audio(self, samples: "np.ndarray") -> None:
        import numpy as np

        self.buffer = np.concatenate([self.buffer, samples.astype(np.float32, copy=False)])
        self.heard += len(samples)

    def step(self, final: bool = False) -> LiveUpdate:
        """One pass over the unfinished audio (`final`: the last one; every word heard becomes final)."""
        heard_s = self.heard_s
        unfinished = self.buffer[max(0, int((self.agreement.final_end - self.buffer_start) * SAMPLE_RATE)):]
        speech = self._has_speech(unfinished)
        if not speech and not self.agreement.tentative and not final:
            self._let_silence_go()  # nothing said since the last final word
            return LiveUpdate((), (), (), heard_s, heard_s)
        buffer_end = self.buffer_start + len(self.buffer) / SAMPLE_RATE
        agreed = self.agreement.update(self._pass(), settled_until=buffer_end - SETTLE_S)
        paused = not speech  # the speaker paused: what the pass heard is final
        if final or paused:
            agreed += self.agreement.finish()
        lines = self.lines.add(agreed, close=final or paused)
        if paused:
            self._let_silence_go()
        else:
            self._trim()
        return LiveUpdate(tuple(agreed), tuple(self.agreement.tentative), tuple(lines), heard_s, heard_s, final)

    def segments(self) -> list[Segment]:
        return list(self.lines.done)

    def warm_up(self) -> None:
        """One pass over a second of silence: the engine's first pass is several times slower than the next."""
        import numpy as np

        found, _info = self.model.transcribe(np.zeros(SAMPLE_RATE, dtype=np.float32), language=self.language,
                                             beam_size=self.beam_size, without_timestamps=True)
        list(found)

    def _pass(self) -> list[WordTuple]:
        final_before = [w[2] for w in self.agreement.final if w[1] <= self.buffer_start + 0.01]
        prompt = "".join(final_before)[-PROMPT_CHARS:].strip() or None
        found, info = self.model.transcribe(
            self.buffer, language=self.language, beam_size=self.beam_size, word_timestamps=True,
            condition_on_previous_text=False, initial_prompt=prompt, vad_filter=True,
            vad_parameters={"min_silence_duration_ms": MIN_SILENCE_MS})
        words = [(self.buffer_start + w.start, self.buffer_start + w.end, w.word, w.probability)
                 for segment in found for w in segment.words or []]
        self.detected_language = self.language or info.language
        return words

    def _has_speech(self, audio: "np.ndarray") -> bool:
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        if len(audio) < SAMPLE_RATE // 4:
            return False
        return bool(get_speech_timestamps(audio, VadOptions(min_silence_duration_ms=MIN_SILENCE_MS)))

    def _let_silence_go(self) -> None:
        """Audio without speech after the final words: only its end is kept (a word may be starting)."""
        keep = int(KEEP_AFTER_SILENCE_S * SAMPLE_RATE)
        if len(self.buffer) > keep:
            self._cut(max(self.agreement.final_end, self.buffer_start + (len(self.buffer) - keep) / SAMPLE_RATE))

    def _trim(self) -> None:
        length = len(self.buffer) / SAMPLE_RATE
        if length <= TRIM_S:
            return
        final = [w for w in self.agreement.final if w[1] > self.buffer_start]
        sentence_ends = [w[1] for w in final if w[2].strip().endswith(SENTENCE_ENDS)]
        if sentence_ends:
            self._cut(sentence_ends[-1])
        elif length > MAX_BUFFER_S and final:
            self._cut(final[-1][1])

    def _cut(self, at: float) -> None:
        drop = max(0, int((at - self.buffer_start) * SAMPLE_RATE))
        self.buffer = self.buffer[drop:]
        self.buffer_start += drop / SAMPLE_RATE


class LiveStream:
    """A StreamingTranscriber on its own thread. add_audio() never waits; updates go to `on_update` (from that
    thread); stop() makes everything heard final and returns once the last update was given."""

    def __init__(self, model_name: str, on_update: Callable[[LiveUpdate], None], language: str | None = None,
                 on_error: Callable[[str], None] | None = None, min_step_s: float = MIN_STEP_S,
                 beam_size: int = 1) -> None:
        self.model_name = model_name
        self.beam_size = beam_size
        self.language = language
        self.label = model_name
        self.on_update = on_update
        self.on_error = on_error or (lambda line: log.error("live: %s", line))
        self.min_step_s = min_step_s
        self.transcriber: StreamingTranscriber | None = None
        self.error: str | None = None
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="live-transcriber", daemon=True)
        self._thread.start()

    def add_audio(self, samples: "np.ndarray") -> None:
        with self._wake:
            self._pending.append(samples)
            self._pending_samples += len(samples)
            if self._pending_samples >= self.min_step_s * SAMPLE_RATE:
                self._wake.notify()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Finish: the audio still waiting is transcribed, then the last pass makes every word final."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def segments(self) -> list[Segment]:
        return self.transcriber.segments() if self.transcriber is not None else []

    def _run(self) -> None:
        try:
            model, self.label = load_model(self.model_name)
            self.transcriber = StreamingTranscriber(model, self.model_name, self.language, self.beam_size)
            self.transcriber.warm_up()
        except (TranscriptionError, ValueError) as exc:
            self.error = str(exc)
            self.on_error(self.error)
            return
        while True:
            with self._wake:
                while not self._stopping and self._pending_samples < self.min_step_s * SAMPLE_RATE:
                    self._wake.wait()
                pending, self._pending, self._pending_samples = self._pending, [], 0
                stopping = self._stopping
            for samples in pending:
                self.transcriber.add_audio(samples)
            started = time.monotonic()
            update = self.transcriber.step(final=stopping)
            log.debug("live pass over %.1f s of audio in %.2f s", len(self.transcriber.buffer) / SAMPLE_RATE,
                      time.monotonic() - started)
            with self._wake:  # what arrived during the pass is heard too: the lag counts it
                arrived = self._pending_samples
            self.on_update(replace(update, heard_s=update.heard_s + arrived / SAMPLE_RATE))
            if stopping:
                return

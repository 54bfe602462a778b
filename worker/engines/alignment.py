"""Word timestamps computed when missing: a segment's text is force-aligned to its audio with faster-whisper's
cross-attention alignment (the same one `word_timestamps=True` uses), so edited text, imported subtitles and
transcripts made without word timestamps still get subtitle cues cut at the words.

    align_missing_words(transcript, path, cancel) -> (transcript with words, segments aligned)
    Aligner().align(...)  the same, keeping its models loaded for the next transcript

Segments are aligned in windows of up to 30 s (one encoder pass each); a segment longer than a window, or one
that cannot be aligned, keeps no words (worker.transcripts.subtitles then times it by its characters). English uses the
bundled tiny.en; other languages the multilingual base of the `multilingual` extra.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from worker.core.cancel import CancelToken
from worker.core.options import DEFAULT_MODEL
from worker.media.audio import SAMPLE_RATE
from worker.transcripts.editing import words_match_text
from worker.transcripts.model import Segment, Transcript, Word

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

WINDOW_S = 30.0  # Whisper's encoder window
_MARGIN_S = 0.2  # audio kept around a window's segments


def needs_words(transcript: Transcript) -> list[int]:
    """Indices of the segments with text whose word timestamps do not spell it."""
    return [i for i, s in enumerate(transcript.segments) if s.text.strip() and not words_match_text(s)]


def _windows(segments: list[Segment], rows: list[int]) -> list[list[int]]:
    """Consecutive rows grouped so each group spans at most WINDOW_S (a longer segment alone: skipped)."""
    groups: list[list[int]] = []
    for row in rows:
        segment = segments[row]
        if segment.end - segment.start > WINDOW_S - 2 * _MARGIN_S:
            continue
        if groups and groups[-1][-1] == row - 1 and segment.end - segments[groups[-1][0]].start <= WINDOW_S - 2 * _MARGIN_S:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups


def _load_model(english: bool) -> "WhisperModel":
    from faster_whisper import WhisperModel

    from worker.engines.faster import default_cpu_threads
    from worker.engines.weights import BUNDLED_MULTILINGUAL_MODEL, resolve_faster_whisper_model

    path, _label = resolve_faster_whisper_model(DEFAULT_MODEL if english else BUNDLED_MULTILINGUAL_MODEL)
    return WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=default_cpu_threads())


def align_missing_words(transcript: Transcript, path: str | Path,
                        cancel: CancelToken | None = None) -> tuple[Transcript, int]:
    """See Aligner.align (the model is loaded for this call only)."""
    return Aligner().align(transcript, path, cancel)


class Aligner:
    """Aligns transcripts one after another, loading each model (English, multilingual) once."""

    def __init__(self) -> None:
        self._models: dict[bool, Any] = {}

    def align(self, transcript: Transcript, path: str | Path, cancel: CancelToken | None = None) -> tuple[Transcript, int]:
        """A copy of `transcript` where segments without matching word timestamps got them from `path`'s
        audio; and how many segments were aligned. Raises MediaError for unreadable audio, TranscriptionError
        when no model fits the language, Cancelled on cancel."""
        rows = needs_words(transcript)
        if not rows:
            return transcript, 0
        language = (transcript.language or "en").split("-")[0].lower()
        english = language == "en"
        if english not in self._models:
            self._models[english] = _load_model(english)
        return _align(self._models[english], transcript, rows, path, None if english else language, cancel)


def _align(model: "WhisperModel", transcript: Transcript, rows: list[int], path: str | Path, language: str | None,
           cancel: CancelToken | None) -> tuple[Transcript, int]:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer

    from worker.media.region import SequentialAudio

    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
    defaults = inspect.signature(WhisperModel.transcribe).parameters
    prepend = defaults["prepend_punctuations"].default
    append = defaults["append_punctuations"].default

    segments = list(transcript.segments)
    aligned = 0
    audio = SequentialAudio(path, cancel)
    try:
        for group in _windows(segments, rows):
            if cancel is not None:
                cancel.raise_if_cancelled()
            aligned += _align_window(model, tokenizer, segments, group, audio.read, (prepend, append))
    finally:
        audio.close()
    return replace(transcript, segments=segments), aligned


def _align_window(model: "WhisperModel", tokenizer: Any, segments: list[Segment], group: list[int],
                  read: Callable[[float, float], Any], punctuation: tuple[str, str]) -> int:
    """Align the segments at `group` (one window) in place; returns how many got words."""
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.transcribe import merge_punctuations

    aligned = 0
    start = max(0.0, segments[group[0]].start - _MARGIN_S)
    end = segments[group[-1]].end + _MARGIN_S
    samples = read(start, end)
    if len(samples) < SAMPLE_RATE // 10:
        return 0
    features = model.feature_extractor(samples)
    frames = min(features.shape[-1] - 1, model.feature_extractor.nb_max_frames)
    encoded = model.encode(pad_or_trim(features[:, :frames]))
    per_segment = [tokenizer.encode(" " + segments[row].text.strip()) for row in group]
    [alignment] = model.find_alignment(tokenizer, [[t for tokens in per_segment for t in tokens]], encoded, frames)
    merge_punctuations(alignment, *punctuation)
    timings = iter(alignment)
    for row, tokens in zip(group, per_segment):
        words, used = [], 0
        while used < len(tokens):
            timing = next(timings, None)
            if timing is None:
                break
            used += len(timing["tokens"])
            if timing["word"]:
                words.append(Word(round(start + float(timing["start"]), 3), round(start + float(timing["end"]), 3),
                                  timing["word"], round(float(timing["probability"]), 4)))
        candidate = replace(segments[row], words=words)
        if words and words_match_text(candidate):
            segments[row] = candidate
            aligned += 1
    return aligned

"""Both Whisper engines with the real (bundled) tiny.en on real speech."""

from __future__ import annotations

from pathlib import Path

import jiwer
import numpy as np
import pytest
from speech_text import JFK_REFERENCE, normalise

from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, TranscriptionError
from worker.core.options import TranscriptionOptions
from worker.engines.base import check_options
from worker.engines.factory import create_engine
from worker.transcripts.model import Segment

TIMING_KEYS = {"gpu", "cold_start", "model_load_s", "inference_s", "audio_s", "rtf"}


@pytest.fixture(scope="module")
def jfk_audio(jfk: Path) -> np.ndarray:
    from worker.media.audio import decode_audio

    return decode_audio(jfk)


@pytest.fixture(scope="module", params=["faster", "openai"])
def engine(request):
    """One engine per kind for the whole module; its model loads on the first transcription. One thread each:
    tiny.en decodes no slower on one, and test runs share this machine's two cores."""
    engine = create_engine(request.param, "tiny.en", threads=1)
    yield engine
    engine.close()


def test_transcribes_jfk_with_word_timestamps_then_stays_loaded(engine, jfk_audio: np.ndarray) -> None:
    streamed: list[Segment] = []
    first = engine.transcribe(jfk_audio, TranscriptionOptions(word_timestamps=True, beam_size=1), on_segment=streamed.append)

    assert jiwer.wer(JFK_REFERENCE, normalise(first.text)) <= 0.1, first.text
    assert first.language == "en" and abs(first.duration - 11.0) < 0.1
    assert first.model == "tiny.en (bundled, offline)" and first.backend == "local"
    assert [s.text for s in streamed] == [s.text for s in first.segments]  # every segment was streamed, in order
    assert [s.id for s in first.segments] == list(range(len(first.segments)))
    assert all(a.end <= b.start + 1e-3 for a, b in zip(first.segments, first.segments[1:]))
    words = [w for s in first.segments for w in s.words]
    americans = next(w for w in words if "Americans" in w.text)
    assert 1.3 <= americans.start <= 2.3 and americans.end > americans.start
    assert all(0.0 <= w.probability <= 1.0 for w in words)
    assert TIMING_KEYS <= set(first.timings)
    assert first.timings["gpu"] == "cpu" and first.timings["cold_start"] is True
    assert first.timings["model_load_s"] > 0 and first.timings["audio_s"] == pytest.approx(11.0, abs=0.1)
    assert first.timings["rtf"] == pytest.approx(first.timings["inference_s"] / first.timings["audio_s"], rel=0.01)

    # the default beam search for faster-whisper; openai-whisper's takes 4-5 s per window on one CPU core here
    beam = 5 if engine.engine_name == "faster-whisper" else 1
    again = engine.transcribe(jfk_audio, TranscriptionOptions(beam_size=beam, initial_prompt="President Kennedy's speech."))
    assert jiwer.wer(JFK_REFERENCE, normalise(again.text)) <= 0.1, again.text
    assert again.timings["cold_start"] is False and again.timings["model_load_s"] == 0.0
    assert all(not s.words for s in again.segments)  # no word timestamps unless asked


def test_empty_audio_and_silence_give_empty_transcripts(engine) -> None:
    for audio in (np.zeros(0, np.float32), np.zeros(5 * 16000, np.float32)):
        transcript = engine.transcribe(audio, TranscriptionOptions())
        assert transcript.segments == [] and transcript.text == ""
        assert transcript.duration == pytest.approx(len(audio) / 16000)
        assert transcript.timings["rtf"] >= 0


def test_english_only_model_refuses_translation_and_other_languages(engine, jfk_audio: np.ndarray) -> None:
    with pytest.raises(TranscriptionError, match="English-only.*cannot translate"):
        engine.transcribe(jfk_audio, TranscriptionOptions(task="translate"))
    with pytest.raises(TranscriptionError, match="English-only.*'de'") as error:
        engine.transcribe(jfk_audio, TranscriptionOptions(language="de"))
    assert "\n" not in str(error.value)
    forced = engine.transcribe(jfk_audio[: 16000 * 4], TranscriptionOptions(language="EN", beam_size=1))
    assert forced.language == "en" and "fellow" in normalise(forced.text)


def test_cancel_stops_the_engine(engine, jfk_audio: np.ndarray) -> None:
    cancel = CancelToken()
    cancel.cancel()
    with pytest.raises(Cancelled):
        engine.transcribe(jfk_audio, TranscriptionOptions(), cancel=cancel)


def test_faster_whisper_cancels_between_streamed_segments(jfk_audio: np.ndarray) -> None:
    engine = create_engine("faster", "tiny.en", threads=1)
    cancel = CancelToken()
    seen: list[Segment] = []

    def on_segment(segment: Segment) -> None:
        seen.append(segment)
        cancel.cancel()

    with pytest.raises(Cancelled):
        engine.transcribe(jfk_audio, TranscriptionOptions(beam_size=1), on_segment=on_segment, cancel=cancel)
    assert len(seen) == 1  # the second segment was never decoded


def test_language_codes_are_checked_for_multilingual_models() -> None:
    codes = frozenset({"en", "de", "fr"})
    assert check_options("tiny", TranscriptionOptions(model="tiny", language="De"), codes) == "de"
    assert check_options("tiny", TranscriptionOptions(model="tiny"), codes) is None  # detect
    assert check_options("tiny", TranscriptionOptions(model="tiny", task="translate", language="fr"), codes) == "fr"
    with pytest.raises(TranscriptionError, match="unknown language code 'klingon'"):
        check_options("tiny", TranscriptionOptions(model="tiny", language="klingon"), codes)


def test_a_missing_optional_engine_is_one_clear_line(monkeypatch, jfk_audio: np.ndarray) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "whisper", None)  # as on the default install, without the extra
    engine = create_engine("openai", "tiny.en")
    with pytest.raises(TranscriptionError) as caught:
        engine.load()
    assert "openai-whisper engine is not installed" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(TranscriptionError, match="faster-whisper"):
        engine.transcribe(jfk_audio, TranscriptionOptions(language="en"))

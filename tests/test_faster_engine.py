"""The batched faster-whisper engine: windows are cut into sentence segments at their aligned words, and no
window's last sentence is lost (real tiny.en on real speech; stand-in words only for the cutting rules)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jiwer
import pytest
from speech_text import normalise

from worker.core.options import TranscriptionOptions
from worker.engines.factory import create_engine
from worker.engines.faster import HOLD_S, MAX_SEGMENT_S, PAUSE_S, sentences

# The English half of multilingual.mp3 (0-29 s): the MIT licence's first two paragraphs.
MIT_ENGLISH = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and associated "
    "documentation files (the Software), to deal in the Software without restriction, including without limitation "
    "the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the Software, "
    "and to permit persons to whom the Software is furnished to do so, subject to the following conditions: "
    "The above copyright notice and this permission notice shall be included in all copies or substantial "
    "portions of the Software."
)


def window(*words: tuple[float, float, str]) -> SimpleNamespace:
    """A decoded window as faster-whisper yields it, with aligned words."""
    return SimpleNamespace(
        start=words[0][0], end=words[-1][1], text="".join(w[2] for w in words),
        words=[SimpleNamespace(start=s, end=e, word=w, probability=0.9) for s, e, w in words],
    )


def test_a_window_is_cut_after_sentence_ends_and_at_long_pauses() -> None:
    cut = sentences(window((0.0, 0.4, " Ask"), (0.4, 0.8, " not."), (1.0, 1.5, " What"), (1.5, 2.0, " your"),
                           (2.0 + PAUSE_S, 2.5 + PAUSE_S, " country"), (2.5 + PAUSE_S, 3.0 + PAUSE_S, " can?")))
    assert [(start, end, text) for start, end, text, _ in cut] == [
        (0.0, 0.8, "Ask not."), (1.0, 2.0, "What your"), (2.0 + PAUSE_S, 3.0 + PAUSE_S, "country can?")]
    assert [len(words) for *_, words in cut] == [2, 2, 2]


def test_a_long_sentence_is_cut_after_a_comma_within_the_limit_and_keeps_every_word() -> None:
    words = [(i * 0.5, i * 0.5 + 0.4, f" w{i}," if i in (5, 15) else f" w{i}") for i in range(60)]  # 30 s, no stop
    cut = sentences(window(*words))
    assert " ".join(text for _, _, text, _ in cut).split() == [w.strip() for _, _, w in words]
    assert all(end - start <= MAX_SEGMENT_S for start, end, _, _ in cut)
    assert cut[0][2].endswith("w15,")  # the last comma inside the limit


def test_a_window_without_words_stays_one_segment() -> None:
    bare = SimpleNamespace(start=1.0, end=4.0, text=" Hello there.", words=None)
    assert sentences(bare) == [(1.0, 4.0, " Hello there.", [])]


@pytest.fixture(scope="module")
def engine():
    engine = create_engine("faster", "tiny.en", threads=1)
    yield engine
    engine.close()


def test_the_end_of_every_window_is_kept_and_segments_are_sentences(engine, shared_audio: Path) -> None:
    from worker.media.audio import decode_audio

    audio = decode_audio(shared_audio / "multilingual.mp3")[: 29 * 16000]  # the English half
    transcript = engine.transcribe(audio, TranscriptionOptions(word_timestamps=True))

    text = normalise(transcript.text)
    assert jiwer.wer(normalise(MIT_ENGLISH), text) <= 0.2, transcript.text
    assert text.endswith("substantial portions of the software"), transcript.text  # the window's last sentence
    segments = transcript.segments
    assert len(segments) >= 3 and all(s.end - s.start <= MAX_SEGMENT_S + 0.5 for s in segments)
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:]))
    for segment in segments:  # a segment is its words, and spans them
        assert normalise(" ".join(w.text for w in segment.words)) == normalise(segment.text)
        assert segment.start == pytest.approx(segment.words[0].start, abs=0.01)
        assert segment.end == pytest.approx(segment.words[-1].end, abs=0.01)


# One window of the ~10 min benchmark file (bench.local_speed) in which batched tiny.en stops after JFK's last
# clause and skips the ~19 s of reading that follow it: the end of jfk.flac, a pause, and the start of
# bench.synth_speech's text in the en-gb-x-rp voice at 175 words a minute.
READING_START = ("The old lighthouse stood at the edge of the harbor for more than a century. Every evening the keeper "
                 "climbed the narrow stairs, cleaned the heavy glass, and lit the lamp before the sun went down. Ships "
                 "that passed in the night could see the beam from far across the water, and sailors learned to trust "
                 "it. One winter a storm arrived without warning.")


def test_speech_a_batched_window_skipped_is_decoded_again(engine, shared_audio: Path, tmp_path: Path) -> None:
    import numpy as np
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    from bench.synth_speech import synthesize
    from worker.media.audio import decode_audio

    rate = 16000
    jfk = decode_audio(shared_audio / "jfk.flac")[int(3.821 * rate) :]
    reading = decode_audio(synthesize(tmp_path / "reading.wav", voice="en-gb-x-rp", words_per_minute=175))
    audio = np.concatenate([jfk, np.zeros(int(0.6 * rate), np.float32), reading[: int(18.521 * rate)]])
    transcript = engine.transcribe(audio, TranscriptionOptions(word_timestamps=True))

    text = normalise(transcript.text)
    assert "ask what you can do for your country" in text, transcript.text
    reading_text = text[text.index("your country", text.index("ask what")) + len("your country") :]
    assert jiwer.wer(normalise(READING_START), reading_text) <= 0.25, transcript.text
    words = [w for segment in transcript.segments for w in segment.words]
    for region in get_speech_timestamps(audio, VadOptions(max_speech_duration_s=30, min_silence_duration_ms=160)):
        start, end = region["start"] / rate, region["end"] / rate
        if end - start > 1.0:  # every stretch of speech longer than a second has words in it
            assert any(start <= (w.start + w.end) / 2 <= end for w in words), (start, end, transcript.text)
    segments = transcript.segments
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:]))


def test_a_file_in_blocks_is_held_only_until_its_speech_is_decoded(engine, tmp_path: Path) -> None:
    """The engine takes a file block by block and lets go of each block once the speech in it is decoded: what it
    holds is bounded by its hold limit (lowered here to 30 s so that 2 minutes show it), not by the file's length,
    and the transcript loses and doubles nothing at the blocks' seams."""
    import weakref

    from readings import two_readings

    from worker.media.chunking import iter_chunks

    path, reference = two_readings(tmp_path)
    yielded: list[tuple[weakref.ref, int]] = []
    held_s: list[float] = []

    def blocks():  # blocks of about 12 s, cut at the quietest moments, each noted as it is handed over
        for chunk in iter_chunks(path, target_s=12.0):
            start_s, samples = chunk.start_s, chunk.samples
            del chunk
            held_s.append(sum(size for ref, size in yielded if ref() is not None) / 16000)  # what the engine holds
            yielded.append((weakref.ref(samples), len(samples)))
            yield start_s, samples
            del samples

    engine.hold_s = 30.0
    try:
        transcript = engine.transcribe_blocks(blocks(), TranscriptionOptions(language="en"))
    finally:
        engine.hold_s = HOLD_S

    file_s = sum(size for _, size in yielded) / 16000
    assert len(yielded) >= 10 and transcript.timings["audio_s"] == pytest.approx(file_s, abs=0.01)
    assert 12.0 < max(held_s) <= 30.0 < file_s / 4, held_s
    words = normalise(transcript.text).split()
    assert jiwer.wer(reference, " ".join(words)) <= 0.15, transcript.text  # 0.09 as one block
    assert abs(len(words) - len(reference.split())) <= 10, transcript.text  # nothing lost or doubled
    segments = transcript.segments
    assert all(a.end <= b.start for a, b in zip(segments, segments[1:])) and segments[-1].end <= file_s

"""The one chunk stitcher: answers in any order come out in order, clamped to their chunk, shifted to their
place and numbered; timings summed; the language most chunks heard wins."""

from __future__ import annotations

from worker.transcripts.model import Segment, Word
from worker.transcripts.stitching import ChunkStitcher


def seg(start: float, end: float, text: str) -> Segment:
    return Segment(id=99, start=start, end=end, text=text, words=[Word(start, end, text)])


def timings(inference_s: float, audio_s: float, cold: bool = False) -> dict:
    return {"gpu": "Tesla T4", "cold_start": cold, "model_load_s": 1.0, "inference_s": inference_s, "audio_s": audio_s}


def test_chunks_arriving_out_of_order_are_stitched_in_order():
    stitcher = ChunkStitcher()
    assert stitcher.add(1, 30.0, 60.0, [seg(0.5, 4.0, "second")], timings(2.0, 30.0), "de") == []
    assert stitcher.add(2, 60.0, 75.0, [seg(1.0, 3.0, "third")], timings(1.0, 15.0), "en") == []
    ready = stitcher.add(0, 0.0, 30.0, [seg(0.0, 2.0, "first")], timings(3.0, 30.0, cold=True), "en")

    assert [chunk.index for chunk in ready] == [0, 1, 2]
    assert [(s.id, s.start, s.end, s.text) for s in stitcher.segments] == [
        (0, 0.0, 2.0, "first"), (1, 30.5, 34.0, "second"), (2, 61.0, 63.0, "third")]
    assert stitcher.segments[1].words[0].start == 30.5
    assert stitcher.language() == "en" and stitcher.end_s == 75.0
    assert stitcher.totals() == {"gpu": "Tesla T4", "cold_start": True, "model_load_s": 3.0, "inference_s": 6.0,
                                 "audio_s": 75.0, "rtf": 0.08}


def test_a_segment_past_its_chunk_is_clamped_or_dropped():
    stitcher = ChunkStitcher()
    [chunk] = stitcher.add(0, 10.0, 20.0, [seg(8.0, 12.5, "runs over"), seg(9.99, 11.0, "hallucinated")], timings(1, 10))
    assert [(s.start, s.end, s.text) for s in chunk.segments] == [(18.0, 20.0, "runs over")]
    assert stitcher.place(seg(-0.2, 1.0, "early"), 20.0, 10.0).start == 20.0


def test_no_language_heard_falls_back_to_the_default_and_ties_go_to_the_first_heard():
    stitcher = ChunkStitcher()
    assert stitcher.language("fr") == "fr"
    stitcher.chunk_done(10.0, timings(1, 10), "de")
    stitcher.chunk_done(20.0, timings(1, 10), "en")
    assert stitcher.language("fr") == "de"
    assert ChunkStitcher().totals()["rtf"] == 0.0

"""Qt-free speaker edits (worker/speakers/edits.py): rename, reassign, merge, and how a speaker is described."""

from __future__ import annotations

import pytest

from worker.speakers.edits import (
    NEW_SPEAKER,
    carry_speakers,
    describe_speaker,
    mark_saved_voice,
    merge_speakers,
    new_speaker,
    reassign_segments,
    rename_speaker,
    segment_counts,
    speaker_index,
)
from worker.transcripts.formats import render
from worker.transcripts.model import Segment, Speaker, Transcript, Word


def _dialogue() -> Transcript:
    return Transcript(
        segments=[
            Segment(0, 0.0, 2.0, " Hello there.", [Word(0.0, 1.0, " Hello"), Word(1.0, 2.0, " there.")], "S1"),
            Segment(1, 2.5, 4.0, " Hi, how are you?", [], "S2"),
            Segment(2, 4.5, 6.0, " Fine, thanks.", [], "S1"),
            Segment(3, 6.5, 8.0, " Good to hear.", [], "S3"),
        ],
        speakers=[Speaker("S1", "Speaker 1", embedding=[0.1] * 4), Speaker("S2", "Speaker 2"),
                  Speaker("S3", "Anna", voice_id=7, confidence=0.912)],
        language="en",
    )


def test_rename_changes_the_name_everywhere_and_leaves_the_input_alone():
    before = _dialogue()
    renamed = rename_speaker(before, "S1", "  Ada   Lovelace ")
    assert [renamed.speaker_name(s) for s in renamed.segments] == ["Ada Lovelace", "Speaker 2", "Ada Lovelace", "Anna"]
    assert [s.speaker for s in renamed.segments] == ["S1", "S2", "S1", "S3"]  # ids never change
    assert before.speakers[0].name == "Speaker 1" and before == _dialogue()
    assert renamed.speakers[0].embedding == [0.1] * 4
    srt = render(renamed, "srt")
    assert "Ada Lovelace: Hello there." in srt and "Speaker 1" not in srt


def test_rename_refuses_an_empty_name_or_an_unknown_speaker():
    with pytest.raises(ValueError, match="needs a name"):
        rename_speaker(_dialogue(), "S1", "   ")
    with pytest.raises(ValueError, match="no speaker"):
        rename_speaker(_dialogue(), "S9", "Bob")


def test_reassign_to_an_existing_a_new_or_no_speaker():
    moved = reassign_segments(_dialogue(), [0, 2], "S2")
    assert [s.speaker for s in moved.segments] == ["S2", "S2", "S2", "S3"]
    assert [s.id for s in moved.speakers] == ["S1", "S2", "S3"]  # S1 stays listed (it may be given rows back)
    fresh = reassign_segments(_dialogue(), [1], NEW_SPEAKER)
    assert fresh.speakers[-1] == Speaker("S4", "Speaker 4") and fresh.segments[1].speaker == "S4"
    named = reassign_segments(_dialogue(), [1], NEW_SPEAKER, name="Bob")
    assert named.speaker_name(named.segments[1]) == "Bob"
    nobody = reassign_segments(_dialogue(), [3], None)
    assert nobody.segments[3].speaker is None and nobody.speaker_name(nobody.segments[3]) is None
    with pytest.raises(ValueError):
        reassign_segments(_dialogue(), [1], "S9")
    with pytest.raises(ValueError):
        reassign_segments(_dialogue(), [9], "S1")
    with pytest.raises(ValueError):
        reassign_segments(_dialogue(), [], "S1")


def test_a_new_speaker_never_reuses_an_id():
    transcript = merge_speakers(_dialogue(), "S1", "S2")  # S1, S3 left
    assert new_speaker(transcript).id == "S4"


def test_merge_moves_the_segments_and_drops_the_speaker():
    merged = merge_speakers(_dialogue(), "S3", "S1")
    assert [s.speaker for s in merged.segments] == ["S3", "S2", "S3", "S3"]
    assert [s.id for s in merged.speakers] == ["S2", "S3"]
    assert speaker_index(merged, "S3") == 1 and speaker_index(merged, "S1") == -1 and speaker_index(merged, None) == -1
    assert segment_counts(merged) == {"S2": 1, "S3": 3}
    txt = render(merged, "txt")
    assert "Anna: Fine, thanks. Good to hear.\n" in txt  # one paragraph now: the speaker no longer changes
    with pytest.raises(ValueError, match="two different"):
        merge_speakers(_dialogue(), "S1", "S1")


def test_describe_shows_the_match_confidence_of_a_known_voice():
    transcript = _dialogue()
    assert describe_speaker(transcript.speakers[2]) == "Anna (known voice, 0.91)"
    assert describe_speaker(transcript.speakers[0]) == "Speaker 1"
    saved = mark_saved_voice(transcript, "S1", 12)
    assert describe_speaker(saved.speakers[0]) == "Speaker 1 (known voice)"
    assert (saved.speakers[0].voice_id, saved.speakers[0].confidence) == (12, None)


def test_re_transcribed_segments_keep_the_speaker_who_said_that_time():
    before = _dialogue().segments[:2]  # S1 0-2 s, S2 2.5-4 s
    after = [Segment(0, 0.0, 1.0, " Hello"), Segment(1, 1.0, 3.8, " there. Hi,"), Segment(2, 3.8, 4.0, " how?"),
             Segment(3, 9.0, 9.5, " later"), Segment(4, 0.0, 1.0, " given", speaker="S3")]
    carried = carry_speakers(before, after)
    assert [s.speaker for s in carried] == ["S1", "S2", "S2", None, "S3"]
    assert all(s.speaker is None for s in after[:4])  # the input is left alone

"""Qt-free editing helpers: times, split, merge, find and replace."""

from __future__ import annotations

import pytest
from editor_fixtures import jfk_transcript

from worker.transcripts.editing import (
    find_matches,
    format_timestamp,
    merge_segments,
    parse_timestamp,
    replace_all,
    replace_in_text,
    split_segment,
    validate_times,
    words_match_text,
)
from worker.transcripts.model import Segment


def test_timestamps_format_and_parse_to_the_millisecond():
    assert format_timestamp(3723.456) == "01:02:03.456"
    assert parse_timestamp("01:02:03.456") == 3723.456
    assert parse_timestamp("02:03,5") == 123.5
    assert parse_timestamp(" 7.25 ") == 7.25
    for text in ("00:00:01.234", "12:59:59.999"):
        assert format_timestamp(parse_timestamp(text)) == text


@pytest.mark.parametrize("bad", ["", "abc", "-1", "1:2:3:4", "00:61:00.000", "00:00:75.0"])
def test_bad_times_are_refused_with_a_reason(bad):
    with pytest.raises(ValueError) as info:
        parse_timestamp(bad)
    assert "\n" not in str(info.value) and str(info.value)


def test_validate_times():
    assert validate_times(1.0, 2.0) is None
    assert validate_times(2.0, 2.0) is None
    assert "negative" in validate_times(-0.5, 2.0)
    assert "after the end" in validate_times(3.0, 2.0)


def test_split_uses_word_timestamps():
    segment = jfk_transcript().segments[0]
    assert words_match_text(segment)
    cut = segment.text.index("ask not")
    left, right = split_segment(segment, cut)
    assert left.text.endswith("Americans") and right.text.startswith("ask not")
    ask = next(w for w in segment.words if w.text.strip() == "ask")
    assert left.end == right.start == ask.start
    assert left.start == segment.start and right.end == segment.end
    assert [w.text for w in left.words + right.words] == [w.text for w in segment.words]
    # a cut inside a word goes to the nearer word boundary
    inside = segment.text.index("Americans") + 2
    left2, right2 = split_segment(segment, inside)
    assert right2.text.startswith("Americans")


def test_split_without_words_is_proportional_to_characters():
    segment = Segment(0, 10.0, 20.0, "aaaa bbbb cccc dddd")
    left, right = split_segment(segment, 10)
    assert (left.text, right.text) == ("aaaa bbbb", "cccc dddd")
    assert left.end == right.start == 15.0
    with pytest.raises(ValueError):
        split_segment(segment, 0)
    with pytest.raises(ValueError):
        split_segment(segment, len(segment.text))


def test_edited_text_no_longer_uses_stale_word_times():
    segment = jfk_transcript().segments[0]
    segment.text = "Completely different words here now"
    assert not words_match_text(segment)
    left, right = split_segment(segment, segment.text.index("words"))
    assert left.words == [] and segment.start < left.end < segment.end


def test_merge_joins_text_times_and_words():
    first, second = jfk_transcript().segments[:2]
    merged = merge_segments(first, second)
    assert merged.start == first.start and merged.end == second.end
    assert merged.text.split() == first.text.split() + second.text.split()
    assert len(merged.words) == len(first.words) + len(second.words)
    assert words_match_text(merged)
    # split undoes merge at the boundary
    left, right = split_segment(merged, len(first.text) + 1)
    assert left.text.split() == first.text.split() and right.text.split() == second.text.split()


def test_find_matches_case_and_whole_word():
    texts = ["Ask not what your country", "ask what you can do", "Task master asks"]
    assert len(find_matches(texts, "ask")) == 4  # Ask, ask, T-ask, ask-s
    assert len(find_matches(texts, "ask", case_sensitive=True)) == 3
    assert [(m.row, m.start) for m in find_matches(texts, "ask", whole_word=True)] == [(0, 0), (1, 0)]
    assert find_matches(texts, "ask", case_sensitive=True, whole_word=True)[0].row == 1
    assert find_matches(texts, "") == []
    assert find_matches(["a.b axb"], ".") == [find_matches(["a.b axb"], ".")[0]]  # literal, not a regex


def test_replace_all_counts_and_respects_options():
    texts = ["Ask not what your country", "ask what you can do", "Task master asks"]
    changed, total = replace_all(texts, "ask", "tell", whole_word=True)
    assert total == 2 and changed == {0: "tell not what your country", 1: "tell what you can do"}
    changed, total = replace_all(texts, "ask", r"\1 $&", case_sensitive=True)
    assert total == 3 and changed[2] == r"T\1 $& master \1 $&s"  # replacement is literal
    assert replace_in_text("Ünïcode ünïcode", "ÜNÏCODE", "x") == ("x x", 2)

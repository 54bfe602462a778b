"""Exports parse where users take them (pysubs2, FFmpeg via PyAV, json, csv, python-docx), respect the
subtitle limits, are written atomically and never overwrite without being told; subtitle import."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from editor_fixtures import jfk_transcript

from worker.core.errors import MediaError, WhisperDeskError
from worker.transcripts import formats
from worker.transcripts.editing import format_timestamp
from worker.transcripts.formats import (
    EXPORT_FORMATS,
    ExportExistsError,
    auto_export,
    auto_export_paths,
    export_many,
    export_transcript,
    import_subtitles,
    render,
)
from worker.transcripts.model import Segment, Speaker, Transcript, Word
from worker.transcripts.subtitles import SubtitleRules, cut_cues, timed_words

UNICODE = Transcript(
    segments=[
        Segment(0, 0.0, 1.5, " Grüße aus Köln — ça va? {not a tag} <b>x</b> & 5 > 3"),
        Segment(1, 1.5, 3.25, " 東京は晴れです。"),
        Segment(2, 3.25, 4.0, " Ελληνικά, русский, עברית 🎙"),
    ],
    language="de", duration=4.0, model="tiny", backend="local", source="/data/grüße.mp3",
)


@pytest.fixture
def out(tmp_path) -> Path:
    """An empty folder of its own (tmp_path also holds the isolated home)."""
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def ffmpeg_cues(path: Path) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of every cue FFmpeg (PyAV's bundled build) decodes from a subtitle file."""
    import av

    cues = []
    with av.open(str(path)) as container:
        assert len(container.streams.subtitles) == 1
        stream = container.streams.subtitles[0]
        assert stream.codec_context.name in ("subrip", "srt", "webvtt")
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            start = int(packet.pts * packet.time_base * 1000)
            end = start + int(packet.duration * packet.time_base * 1000)
            for subtitle in packet.decode():
                for rect in subtitle if hasattr(subtitle, "__iter__") else [subtitle]:
                    cues.append((start, end, rect.dialogue.decode("utf-8")))
    return cues


def test_every_format_is_written_and_parses(out):
    import docx
    import pysubs2

    transcript = jfk_transcript()
    assert len(transcript.segments) >= 2 and transcript.segments[0].words
    for fmt in EXPORT_FORMATS:
        path = export_transcript(transcript, out / f"jfk.{fmt}", fmt)
        assert path.is_file() and path.stat().st_size > 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"jfk.{fmt}" for fmt in EXPORT_FORMATS)  # no temp files left

    words = transcript.text.split()
    assert (out / "jfk.txt").read_text(encoding="utf-8").split() == words

    for fmt in ("srt", "vtt"):
        subs = pysubs2.load(str(out / f"jfk.{fmt}"))
        assert subs.format == fmt
        assert " ".join(e.plaintext.replace("\n", " ") for e in subs).split() == words
        assert [(e.start, e.end) for e in subs] == [(round(s.start * 1000), round(s.end * 1000)) for s in transcript.segments]
        decoded = ffmpeg_cues(out / f"jfk.{fmt}")
        assert [(start, end) for start, end, _ in decoded] == [(e.start, e.end) for e in subs]
        assert " ".join(text.replace("\\N", " ").replace("\n", " ") for _, _, text in decoded).split() == words

    data = json.loads((out / "jfk.json").read_text(encoding="utf-8"))
    assert data["text"] == transcript.text and data["model"] == "tiny.en" and data["timings"]["gpu"] == "cpu"
    assert Transcript.from_dict(data) == transcript  # segments, words, timings: all there

    with open(out / "jfk.tsv", encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream, delimiter="\t"))
    assert rows[0] == ["start", "end", "text"]
    assert [(int(a), int(b)) for a, b, _ in rows[1:]] == [(round(s.start * 1000), round(s.end * 1000)) for s in transcript.segments]
    assert " ".join(text for _, _, text in rows[1:]).split() == words

    document = docx.Document(str(out / "jfk.docx"))
    paragraphs = [p.text for p in document.paragraphs]
    assert paragraphs[0] == "jfk.flac"
    assert " ".join(paragraphs[1:]).split() == words


def test_txt_and_docx_with_timestamps():
    import io

    import docx

    transcript = jfk_transcript()
    lines = render(transcript, "txt", timestamps=True).splitlines()
    first = transcript.segments[0]
    assert lines[0] == f"[00:00:00.000 --> {format_timestamp(first.end)}] {first.text.strip()}"
    document = docx.Document(io.BytesIO(render(transcript, "docx", timestamps=True)))
    assert document.paragraphs[1].text.startswith("[00:00:00.000 --> ")


@pytest.mark.parametrize("rules", [None, SubtitleRules(max_line_chars=20, max_lines=1), SubtitleRules(max_line_chars=32),
                                   SubtitleRules(max_line_chars=5, max_lines=2)])
def test_subtitle_cues_keep_every_word_one_per_segment_or_within_the_rules(out, rules):
    import pysubs2

    transcript = jfk_transcript()
    path = export_transcript(transcript, out / "jfk.srt", rules=rules)
    subs = pysubs2.load(str(path))
    shown = " ".join(e.plaintext.replace("\n", " ") for e in subs)
    assert shown.split() == transcript.text.split()  # nothing lost, in order, words never cut
    assert [e.start for e in subs] == sorted(e.start for e in subs) and all(e.start < e.end for e in subs)
    if rules is None:  # one cue per segment, at the segment's own times
        assert [(e.start, e.end) for e in subs] == [(round(s.start * 1000), round(s.end * 1000)) for s in transcript.segments]
    else:
        longest_word = max(len(w) for w in transcript.text.split())
        for event in subs:
            lines = event.plaintext.split("\n")
            assert 1 <= len(lines) <= rules.max_lines
            assert all(len(line) <= max(rules.max_line_chars, longest_word) for line in lines), lines
    assert len(ffmpeg_cues(path)) == len(subs)


def test_cues_start_with_their_first_word_when_words_are_timed():
    transcript = jfk_transcript()
    result = cut_cues(transcript, SubtitleRules(max_line_chars=20, max_lines=1))
    starts = {round(w.start * 1000) for s in transcript.segments for w in s.words}
    for cue in result.cues:
        first_spoken = cue.words[0].start
        assert first_spoken in starts  # the first word's own time
        assert first_spoken - 500 <= cue.start <= first_spoken < cue.end  # shown with it (at most 0.5 s early)


def test_without_words_cues_are_timed_in_proportion_to_characters():
    transcript = Transcript(segments=[Segment(0, 10.0, 20.0, "aaaa bbbb cccc dddd")], duration=20.0)
    words, estimated = timed_words(transcript)
    assert estimated == 1 and [w.start for w in words] == [10000, 10000 + 10000 * 5 // 19, 10000 + 10000 * 10 // 19,
                                                          10000 + 10000 * 15 // 19]
    result = cut_cues(transcript, SubtitleRules(max_line_chars=9, max_lines=1, max_cps=30))
    assert [c.lines for c in result.cues] == [["aaaa bbbb"], ["cccc dddd"]]
    assert "1 segment without word timestamps timed by characters" in result.report_line()


def test_words_longer_than_a_line_stay_whole_and_unspaced_scripts_break_between_words():
    long_word = "Donaudampfschifffahrtsgesellschaftskapitän"
    german = cut_cues(Transcript(segments=[Segment(0, 0.0, 2.0, f"der {long_word} kommt")], duration=2.0),
                      SubtitleRules(max_line_chars=10, max_lines=2))
    assert [line for cue in german.cues for line in cue.lines] == ["der", long_word, "kommt"]
    assert "1 line over 10 characters (a word longer than a line)" in german.report_line()
    pieces = ["東京", "は", "晴れ", "です。", "明日", "も", "晴れる", "でしょう。"]
    # as Whisper gives them: the first word carries the segment's leading space, the others none
    words = [Word(i * 0.5, i * 0.5 + 0.4, (" " if i == 0 else "") + piece) for i, piece in enumerate(pieces)]
    japanese = cut_cues(Transcript(segments=[Segment(0, 0.0, 4.0, "".join(pieces), words)], language="ja", duration=4.0),
                        SubtitleRules(max_line_chars=6, max_lines=2, max_cps=30))
    lines = [line for cue in japanese.cues for line in cue.lines]
    assert len(lines) > 1 and all(len(line) <= 6 for line in lines) and "".join(lines) == "".join(pieces)


def test_unicode_and_markup_characters_survive_every_format(out):
    import pysubs2

    for fmt in EXPORT_FORMATS:
        export_transcript(UNICODE, out / f"u.{fmt}", fmt)
    for fmt in ("srt", "vtt"):
        imported = import_subtitles(out / f"u.{fmt}")
        expected = [s.text.strip() for s in UNICODE.segments]
        if fmt == "srt":  # SRT has no escaping: <b> is bold there, not text
            expected[0] = expected[0].replace("<b>x</b>", "x")
        assert [s.text for s in imported.segments] == expected
        assert len(pysubs2.load(str(out / f"u.{fmt}"))) == 3
        assert len(ffmpeg_cues(out / f"u.{fmt}")) == 3
    assert "東京は晴れです。" in (out / "u.txt").read_text(encoding="utf-8")
    assert json.loads((out / "u.json").read_text(encoding="utf-8"))["segments"][2]["text"].endswith("🎙")


def test_srt_and_vtt_round_trip_to_the_millisecond(out):
    transcript = jfk_transcript()
    transcript.segments[0].start = 0.123
    transcript.segments[-1].end = 10.987
    for fmt in ("srt", "vtt"):
        path = export_transcript(transcript, out / f"jfk.{fmt}")
        back = import_subtitles(path)
        assert [s.text for s in back.segments] == [s.text.strip() for s in transcript.segments]
        assert [(s.start, s.end) for s in back.segments] == [(s.start, s.end) for s in transcript.segments]
        # exporting the import again gives the same file
        again = export_transcript(back, out / f"again.{fmt}")
        assert again.read_text(encoding="utf-8") == path.read_text(encoding="utf-8")


def test_existing_files_are_not_overwritten_without_permission(out):
    transcript = jfk_transcript()
    target = out / "jfk.srt"
    target.write_text("precious", encoding="utf-8")
    with pytest.raises(ExportExistsError) as info:
        export_transcript(transcript, target)
    message = str(info.value)
    assert isinstance(info.value, WhisperDeskError) and isinstance(info.value, FileExistsError)
    assert "jfk.srt" in message and "\n" not in message
    assert target.read_text(encoding="utf-8") == "precious"
    export_transcript(transcript, target, overwrite=True)
    assert "Americans" in target.read_text(encoding="utf-8")
    assert sorted(p.name for p in out.iterdir()) == ["jfk.srt"]


def test_a_failure_mid_write_leaves_no_file_and_keeps_the_old_one(out, monkeypatch):
    transcript = jfk_transcript()

    def disk_full(_fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(formats.os, "fsync", disk_full)
    with pytest.raises(WhisperDeskError) as info:
        export_transcript(transcript, out / "new.srt")
    assert "new.srt" in str(info.value) and "No space left" in str(info.value)
    assert list(out.iterdir()) == []  # neither the export nor a temporary file

    old = out / "old.json"
    old.write_text('{"old": true}', encoding="utf-8")
    with pytest.raises(WhisperDeskError):
        export_transcript(transcript, old, overwrite=True)
    assert old.read_text(encoding="utf-8") == '{"old": true}'
    assert [p.name for p in out.iterdir()] == ["old.json"]


def test_unknown_format_is_one_clear_line(out):
    with pytest.raises(WhisperDeskError) as info:
        export_transcript(jfk_transcript(), out / "x.pdf")
    assert "pdf" in str(info.value) and "srt" in str(info.value)


def test_bulk_export_writes_every_file_and_keeps_same_named_sources_apart(out):
    first = jfk_transcript()
    second = jfk_transcript()
    second.segments[0].text = " A different first line"
    items = [(first, "/talks/a/interview.mp3"), (second, "/talks/b/interview.wav"), (UNICODE, "/x/grüße.mp3")]
    out = out / "exports"
    written = export_many(items, out, EXPORT_FORMATS, rules=SubtitleRules(max_line_chars=32))
    expected = {f"{stem}.{fmt}" for stem in ("interview", "interview (2)", "grüße") for fmt in EXPORT_FORMATS}
    assert {p.name for p in written} == expected == {p.name for p in out.iterdir()}
    assert "A different first line" in (out / "interview (2).txt").read_text(encoding="utf-8")

    # a second run refuses before writing anything, then overwrites when allowed
    (out / "grüße.txt").write_text("keep", encoding="utf-8")
    with pytest.raises(ExportExistsError):
        export_many(items, out, ["txt"])
    assert (out / "grüße.txt").read_text(encoding="utf-8") == "keep"
    export_many(items, out, ["txt"], overwrite=True)
    assert "東京" in (out / "grüße.txt").read_text(encoding="utf-8")


def test_automatic_export_next_to_the_source_or_to_a_folder(out):
    source = out / "media" / "talk.flac"
    source.parent.mkdir()
    source.write_bytes(b"audio")
    assert auto_export_paths(source, None, ["srt", "txt"]) == [source.with_suffix(".srt"), source.with_suffix(".txt")]
    assert auto_export_paths(source, out / "out", ["json"]) == [out / "out" / "talk.json"]

    written = auto_export(jfk_transcript(), source, EXPORT_FORMATS)
    assert [p.name for p in written] == [f"talk.{fmt}" for fmt in EXPORT_FORMATS]
    # a second completion never overwrites: numbered siblings
    again = auto_export(jfk_transcript(), source, ["srt"], folder=None)
    assert [p.name for p in again] == ["talk (2).srt"]
    to_folder = auto_export(jfk_transcript(), source, ["vtt", "tsv"], folder=out / "out")
    assert all(p.is_file() and p.parent == out / "out" for p in to_folder)


@pytest.mark.parametrize("content,reason", [
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"Dear diary, today I transcribed nothing.\nThe end.\n", "not SRT or WebVTT"),
    (b"ID3\x03\x00\x00\x00\x00\x00\x00binary", "binary"),
    (b"WEBVTT\n\n", "no subtitle cues"),
    (b"1\n00:00:01,000 --> 00:00:02,000\n\n", "no subtitle cues"),
])
def test_bad_subtitle_files_get_a_clear_reason(out, content, reason):
    path = out / "broken subs.srt"
    path.write_bytes(content)
    with pytest.raises(MediaError) as info:
        import_subtitles(path)
    message = str(info.value)
    assert message.startswith("broken subs.srt: ") and reason in message and "\n" not in message


def test_missing_subtitle_file(out):
    with pytest.raises(MediaError, match="gone.vtt: no such file"):
        import_subtitles(out / "gone.vtt")


def test_import_reads_hand_written_vtt_with_cue_settings_and_latin1_srt(out):
    vtt = out / "notes.vtt"
    vtt.write_text("WEBVTT\n\nintro\n00:01.500 --> 00:03.250 align:start\nFirst line\nsecond line\n\n"
                   "00:00:04.000 --> 00:00:05.000\nFish &amp; chips\n", encoding="utf-8")
    imported = import_subtitles(vtt)
    assert [(s.start, s.end, s.text) for s in imported.segments] == [(1.5, 3.25, "First line second line"), (4.0, 5.0, "Fish & chips")]
    srt = out / "old.srt"
    srt.write_bytes("1\n00:00:00,000 --> 00:00:01,000\n<i>Caf\u00e9</i> cr\u00e8me\n".encode("cp1252"))
    assert import_subtitles(srt).segments[0].text == "Café crème"


def test_export_to_an_unwritable_place_is_one_line(out):
    blocker = out / "file"
    blocker.write_text("x")
    with pytest.raises(WhisperDeskError) as info:
        export_transcript(jfk_transcript(), blocker / "sub" / "jfk.srt")
    assert "jfk.srt" in str(info.value) and "\n" not in str(info.value)
    assert os.listdir(out) == ["file"]


def test_json_leaves_out_words_an_edit_made_stale_and_reads_back_with_its_speakers():
    transcript = jfk_transcript()
    transcript.segments[1].text = " ask what you can do for your planet"  # edited: its words no longer match
    transcript.speakers = [Speaker("S1", "Ada")]
    for segment in transcript.segments:
        segment.speaker = "S1"
    data = json.loads(render(transcript, "json"))
    assert data["segments"][0]["words"] and data["segments"][1]["words"] == []
    assert [s["speaker"] for s in data["segments"]] == ["Ada", "Ada"] and data["segments"][0]["speaker_id"] == "S1"
    back = Transcript.from_dict(data)
    assert [s.speaker for s in back.segments] == ["S1", "S1"] and back.speaker_name(back.segments[0]) == "Ada"
    assert back.segments[0].words == transcript.segments[0].words and back.segments[1].text.endswith("planet")


def test_json_words_carry_their_leading_space_as_openai_whisper_writes_them():
    transcript = jfk_transcript()
    for segment in transcript.segments:  # the local engine keeps them stripped
        for word in segment.words:
            word.text = word.text.strip()
    words = [w["word"] for s in json.loads(render(transcript, "json"))["segments"] for w in s["words"]]
    assert words == [" " + w for w in transcript.text.split()]

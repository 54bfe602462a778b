"""Subtitles that follow the rules: every cue checked against them, parsed back by pysubs2 and by FFmpeg
(PyAV), and the words unchanged. Real tiny.en transcripts; the acceptance test runs the real CLI on
about 77 s of espeak-ng speech."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pysubs2
import pytest
from editor_fixtures import jfk_transcript

from worker.transcripts.formats import export_transcript, render
from worker.transcripts.model import Segment, Transcript, Word
from worker.transcripts.subtitles import SubtitleRules, balanced_lines, cut_cues, fit_segments, render_subtitles, timed_words

ROOT = Path(__file__).resolve().parent.parent


def words_of(text: str) -> list[str]:
    return text.split()


def ffmpeg_cues(path: Path) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of every cue as FFmpeg's subtitle decoders read it."""
    import av

    cues = []
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            start = round(packet.pts * packet.time_base * 1000)
            end = start + round(packet.duration * packet.time_base * 1000)
            for subtitle in packet.decode():
                text = subtitle.dialogue.decode("utf-8")
                cues.append((start, end, re.sub(r"\{[^}]*\}", "", text).replace("\\N", "\n")))
    return cues


def check_against_rules(subs: pysubs2.SSAFile, rules: SubtitleRules, transcript: Transcript, report: str,
                        rounding_ms: int = 0) -> None:
    """What a subtitle editor would check, cue by cue, and that the words are the transcript's.
    `rounding_ms`: the format's time resolution (ASS: 10 ms) blurs gaps and durations by that much."""
    too_fast = too_short = 0
    previous_end = None
    for event in subs:
        lines = event.plaintext.split("\n")
        assert 1 <= len(lines) <= rules.max_lines, lines
        for line in lines:
            assert line == line.strip() and line
            assert len(line) <= rules.max_line_chars or " " not in line, lines  # only a lone overlong word
        assert event.end > event.start
        if previous_end is not None:
            assert event.start - previous_end >= min(rules.min_gap_ms, rules.min_gap_ms - rounding_ms), (previous_end, event.start)
            assert event.start >= previous_end  # never overlap
        previous_end = event.end
        chars = len(" ".join(lines))
        too_fast += chars * 1000 / (event.end - event.start) > rules.max_cps + 1e-6
        too_short += event.end - event.start < rules.min_duration_ms
    shown = " ".join(e.plaintext.replace("\n", " ") for e in subs)
    assert words_of(shown) == words_of(transcript.text)  # same words, same order
    # whatever broke a rule is in the one-line report, counted right
    assert "\n" not in report
    if rounding_ms:
        return
    if too_fast:
        assert f"{too_fast} cue{'s' if too_fast != 1 else ''} exceed" in report, report
    else:
        assert "characters per second" not in report
    if too_short:
        assert f"{too_short} cue{'s' if too_short != 1 else ''} shorter than {rules.min_duration_ms} ms" in report
    else:
        assert "shorter than" not in report


@pytest.mark.parametrize("rules", [
    SubtitleRules(),
    SubtitleRules(max_line_chars=32, max_lines=2),
    SubtitleRules(max_line_chars=20, max_lines=1, max_cps=12, min_duration_ms=1500, min_gap_ms=200),
    SubtitleRules(max_line_chars=12, max_lines=3, max_cps=25, min_duration_ms=500, min_gap_ms=0),
])
@pytest.mark.parametrize("fmt", ["srt", "vtt", "ass"])
def test_cues_follow_the_rules_and_parse_in_pysubs2_and_ffmpeg(tmp_path: Path, rules: SubtitleRules, fmt: str) -> None:
    transcript = jfk_transcript()
    path = export_transcript(transcript, tmp_path / f"jfk.{fmt}", rules=rules)
    subs = pysubs2.load(str(path))
    assert subs.format == fmt and len(subs) >= 1
    check_against_rules(subs, rules, transcript, cut_cues(transcript, rules).report_line(), 10 if fmt == "ass" else 0)
    decoded = ffmpeg_cues(path)
    ass_cs = 10 if fmt == "ass" else 1  # ASS times are centiseconds
    assert [(round(a / ass_cs), round(b / ass_cs)) for a, b, _ in decoded] == [
        (round(e.start / ass_cs), round(e.end / ass_cs)) for e in subs]
    assert words_of(" ".join(text for _, _, text in decoded)) == words_of(transcript.text)


def test_breaks_prefer_punctuation_and_pauses_and_lines_are_balanced() -> None:
    words = "It was late. The harbor lights were on, and the boats came home slowly".split()
    segment_words, t = [], 0.0
    for word in words:
        segment_words.append(Word(t, t + 0.3, " " + word))
        t += 0.35 + (0.9 if word == "on," else 0.0)  # a pause after "on,"
    transcript = Transcript(segments=[Segment(0, 0.0, t, " " + " ".join(words), segment_words)], duration=t + 1)
    result = cut_cues(transcript, SubtitleRules(max_line_chars=24, max_lines=2, max_cps=30))
    texts = [cue.text for cue in result.cues]
    assert texts[0].endswith("late.") or texts[0].endswith("on,"), texts  # a cue ends at punctuation
    assert any(text.endswith("on,") for text in texts), texts  # the pause after "on," ends a cue
    for cue in result.cues:
        if len(cue.lines) == 2:  # balanced: the two lines differ less than a long word's length
            assert abs(len(cue.lines[0]) - len(cue.lines[1])) <= 10, cue.lines


def test_where_rules_cannot_hold_lines_win_and_the_rest_is_reported_in_one_line() -> None:
    # 40 words in 4 s: no cue can be read at 17 characters per second
    words = [Word(i * 0.1, i * 0.1 + 0.09, f" word{i}") for i in range(40)]
    long_word = "Donaudampfschifffahrtsgesellschaftskapitän"
    transcript = Transcript(segments=[
        Segment(0, 0.0, 4.0, "".join(w.text for w in words), words),
        Segment(1, 4.0, 5.0, f" the {long_word} spoke", [Word(4.0, 4.2, " the"), Word(4.2, 4.8, " " + long_word),
                                                          Word(4.8, 5.0, " spoke")]),
    ], duration=5.0)
    rules = SubtitleRules(max_line_chars=20, max_lines=2)
    result = cut_cues(transcript, rules)
    for cue in result.cues:
        assert len(cue.lines) <= 2
        assert all(len(line) <= 20 or line == long_word for line in cue.lines), cue.lines
    assert [w for cue in result.cues for w in cue.text.split()] == transcript.text.split()  # the word is whole
    report = result.report_line()
    assert "exceed 17 characters per second" in report
    assert "1 line over 20 characters (a word longer than a line)" in report
    assert "\n" not in report
    assert all(b.start - a.end >= rules.min_gap_ms for a, b in zip(result.cues, result.cues[1:]))


def test_a_new_speaker_starts_a_new_cue_and_edited_text_is_timed_by_characters() -> None:
    first = Segment(0, 0.0, 1.0, " Yes.", [Word(0.0, 0.5, " Yes.")], speaker="S1")
    second = Segment(1, 1.1, 2.0, " No.", [Word(1.1, 1.6, " No.")], speaker="S2")
    edited = Segment(2, 3.0, 6.0, " This text was typed by hand", [Word(3.0, 3.5, " Something")], speaker="S2")
    transcript = Transcript(segments=[first, second, edited], duration=6.0)
    result = cut_cues(transcript, SubtitleRules())
    assert [cue.text for cue in result.cues][:2] == ["Yes.", "No."]  # short, but never merged across speakers
    assert result.cues[-1].text.endswith("typed by hand")
    assert result.estimated_segments == 1
    assert "1 segment without word timestamps timed by characters" in result.report_line()


def test_stripped_engine_words_are_used_as_whole_words() -> None:
    """The local engine strips word texts ("so", not " so"): they still time the cues."""
    transcript = jfk_transcript()
    for segment in transcript.segments:
        for word in segment.words:
            word.text = word.text.strip()
    words, estimated = timed_words(transcript)
    assert estimated == 0
    assert [w.text for w in words] == transcript.text.split()


def test_balanced_lines_never_split_a_word() -> None:
    words, _ = timed_words(jfk_transcript())
    for limit in (8, 15, 30):
        lines = balanced_lines(words, limit)
        assert [w for line in lines for w in line] == words
        assert all(sum(len(w.text) for w in line) + len(line) - 1 <= limit or len(line) == 1 for line in lines)


def test_text_json_and_tsv_ignore_the_rules() -> None:
    transcript = jfk_transcript()
    rules = SubtitleRules(max_line_chars=10, max_lines=1)
    for fmt in ("txt", "json", "tsv"):
        assert render(transcript, fmt, rules=rules) == render(transcript, fmt)


def test_fit_segments_makes_one_segment_per_cue_keeping_word_timestamps() -> None:
    transcript = jfk_transcript()
    rules = SubtitleRules(max_line_chars=20, max_lines=1)
    segments, result = fit_segments(transcript, rules)
    assert len(segments) == len(result.cues) > len(transcript.segments)
    assert words_of(" ".join(s.text for s in segments)) == words_of(transcript.text)
    for segment, cue in zip(segments, result.cues):
        assert (round(segment.start * 1000), round(segment.end * 1000)) == (cue.start, cue.end)
        assert "".join(w.text for w in segment.words).split() == segment.text.split()
    assert all(b.start >= a.end for a, b in zip(segments, segments[1:]))
    # fitted segments, exported with the same rules, give the same cues
    again = cut_cues(Transcript(segments=segments, duration=transcript.duration), rules)
    assert [c.text for c in again.cues] == [c.text for c in result.cues]


def test_karaoke_vtt_has_word_timestamps_inside_each_cue(tmp_path: Path) -> None:
    transcript = jfk_transcript()
    rules = SubtitleRules(max_line_chars=32, karaoke=True)
    path = export_transcript(transcript, tmp_path / "jfk.vtt", rules=rules)
    text = path.read_text(encoding="utf-8")
    subs = pysubs2.load(str(path))
    result = cut_cues(transcript, rules)
    spoken = {round(w.start * 1000) for s in transcript.segments for w in s.words}
    blocks = [b for b in text.split("\n\n") if "-->" in b]
    assert len(blocks) == len(result.cues) == len(subs) == len(ffmpeg_cues(path))
    tagged = 0
    for block, cue in zip(blocks, result.cues):
        stamps = [_ms(m) for m in re.findall(r"<(\d\d:\d\d:\d\d\.\d\d\d)>", block)]
        assert stamps == sorted(stamps) and all(cue.start < s < cue.end for s in stamps)
        assert set(stamps) <= spoken  # each tag is a word's start
        tagged += len(stamps)
    assert tagged >= len(transcript.text.split()) - 2 * len(result.cues)
    plain = re.sub(r"<[^>]+>", "", " ".join(b.split("\n", 2)[-1] for b in blocks))
    assert words_of(plain) == words_of(transcript.text)


def test_karaoke_ass_has_one_k_tag_per_word_adding_up_to_the_cue(tmp_path: Path) -> None:
    transcript = jfk_transcript()
    rules = SubtitleRules(max_line_chars=32, karaoke=True)
    path = export_transcript(transcript, tmp_path / "jfk.ass", rules=rules)
    subs = pysubs2.load(str(path))
    assert subs.format == "ass"
    for event in subs:
        tags = [int(k) for k in re.findall(r"\{\\k(\d+)\}", event.text)]
        assert len(tags) == len(event.plaintext.split())
        assert abs(sum(tags) * 10 - (event.end - event.start)) <= 10 * len(tags)
    assert words_of(" ".join(e.plaintext.replace("\n", " ") for e in subs)) == words_of(transcript.text)
    decoded = ffmpeg_cues(path)
    assert len(decoded) == len(subs)
    assert words_of(" ".join(t for _, _, t in decoded)) == words_of(transcript.text)


def _ms(stamp: str) -> int:
    hours, minutes, seconds = stamp.split(":")
    return round((int(hours) * 3600 + int(minutes) * 60 + float(seconds)) * 1000)


def test_bad_rules_are_one_clear_line() -> None:
    with pytest.raises(ValueError, match="max lines must be at least 1"):
        SubtitleRules(max_lines=0)
    result = _run_cli("transcribe", "nothing.wav", "--format", "srt", "--max-line-chars", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["whisper-desk: max line characters must be at least 1, not 0"]


def test_render_subtitles_refuses_other_formats() -> None:
    with pytest.raises(ValueError):
        render_subtitles(jfk_transcript(), "txt")


# --- acceptance: the real CLI on about 70 s of speech --------------------------------------------------------

def _run_cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "worker.cli", *args], cwd=ROOT, env=dict(os.environ),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def speech_70s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 77 s of English read by espeak-ng (bench/synth_speech.py)."""
    import soundfile

    from bench.synth_speech import synthesize

    path = synthesize(tmp_path_factory.mktemp("speech") / "lighthouse.wav")
    assert 65 <= soundfile.info(str(path)).duration <= 90
    return path


@pytest.mark.slow
def test_cli_srt_with_32_characters_and_2_lines_keeps_every_word(tmp_path: Path, speech_70s: Path) -> None:
    srt, json_out = tmp_path / "lighthouse.srt", tmp_path / "lighthouse.json"
    result = _run_cli("transcribe", str(speech_70s), "--format", "srt", "--max-line-chars", "32", "--max-lines", "2",
                      "-o", str(srt))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    words = _run_cli("transcribe", str(speech_70s), "--format", "json", "--word-timestamps", "-o", str(json_out))
    assert words.returncode == 0, words.stderr
    transcript = Transcript.from_dict(__import__("json").loads(json_out.read_text(encoding="utf-8")))
    assert all(s.words for s in transcript.segments)  # the engine gave word timestamps

    subs = pysubs2.load(str(srt))
    rules = SubtitleRules(max_line_chars=32, max_lines=2)
    assert len(subs) > len(transcript.segments)  # re-cut, not one cue per segment
    for event in subs:
        lines = event.plaintext.split("\n")
        assert len(lines) <= 2 and all(len(line) <= 32 for line in lines), lines
    report = [line.split("subtitles: ", 1)[1] for line in result.stderr.splitlines() if ": subtitles: " in line]
    check_against_rules(subs, rules, transcript, report[0] if report else "")
    assert "without word timestamps" not in result.stderr
    decoded = ffmpeg_cues(srt)
    assert [(a, b) for a, b, _ in decoded] == [(e.start, e.end) for e in subs]
    assert words_of(" ".join(t for _, _, t in decoded)) == words_of(transcript.text)
    assert len(words_of(transcript.text)) > 150  # the whole recording, not a fragment


# --- word timestamps computed when missing ---------------------------------------------------------------------------

def test_missing_word_timestamps_are_computed_from_the_audio(jfk: Path) -> None:
    from worker.engines.alignment import align_missing_words, needs_words

    reference = jfk_transcript()
    transcript = jfk_transcript()
    for segment in transcript.segments:
        segment.words = []  # e.g. transcribed without word timestamps, or imported from an SRT
    transcript.segments[1].text = " ask what you can do for your planet"  # and one edited
    assert needs_words(transcript) == [0, 1]
    aligned, count = align_missing_words(transcript, jfk)
    assert count == 2 and needs_words(aligned) == []
    assert transcript.segments[0].words == []  # the input is not changed
    got = [w for s in aligned.segments for w in s.words]
    expected = [w for s in reference.segments for w in s.words]
    assert [w.text.strip() for w in got] == [w.text.strip() for w in expected][:-1] + ["planet"]
    close = sum(abs(a.start - b.start) <= 0.1 for a, b in zip(got, expected))
    assert close >= len(expected) - 2, [(a.text, a.start, b.start) for a, b in zip(got, expected)]
    assert got[-1].probability < 0.2  # "planet" was never said: the model doubts it
    # the re-cut now uses the computed words, not the characters
    result = cut_cues(aligned, SubtitleRules(max_line_chars=20, max_lines=1))
    assert result.estimated_segments == 0 and "timed by characters" not in result.report_line()


def test_sequential_audio_reads_ranges_in_one_pass(jfk: Path) -> None:
    import numpy as np

    from worker.media.audio import SAMPLE_RATE, decode_audio
    from worker.media.region import SequentialAudio, decode_range

    whole = decode_audio(jfk)
    reader = SequentialAudio(jfk)
    try:
        for start, end in ((0.5, 2.0), (1.5, 9.0), (8.0, 10.5), (1.0, 1.5), (10.8, 20.0)):  # the 4th goes back
            part = reader.read(start, end)
            assert np.array_equal(part, whole[round(start * SAMPLE_RATE):round(end * SAMPLE_RATE)])
    finally:
        reader.close()
    assert len(decode_range(jfk, 2.0, 3.0)) == SAMPLE_RATE
    with pytest.raises(Exception, match="jfk.flac: has no audio between 30.0 s and 31.0 s"):
        decode_range(jfk, 30.0, 31.0)


def test_cli_rules_default_to_the_preferences(tmp_path: Path, jfk: Path) -> None:
    from worker.jobs.preferences import Preferences

    Preferences(subtitle_max_line_chars=18, subtitle_max_lines=1).save()  # the test's own config folder
    srt = tmp_path / "jfk.srt"
    result = _run_cli("transcribe", str(jfk), "--format", "srt", "--no-library", "-o", str(srt))
    assert result.returncode == 0, result.stderr
    subs = pysubs2.load(str(srt))
    assert len(subs) >= 4 and all(len(e.plaintext) <= 18 and "\n" not in e.plaintext for e in subs)
    wider = _run_cli("transcribe", str(jfk), "--format", "srt", "--no-library", "--max-line-chars", "40", "-o",
                     str(tmp_path / "wide.srt"))
    assert wider.returncode == 0, wider.stderr
    assert any(len(e.plaintext) > 18 for e in pysubs2.load(str(tmp_path / "wide.srt")))


def test_subtitles_exported_on_completion_follow_the_preferences_rules(tmp_path: Path) -> None:
    from worker.jobs.preferences import Preferences
    from worker.jobs.queue import auto_export

    prefs = Preferences(auto_export_formats=("srt", "txt"), auto_export_folder=str(tmp_path),
                        subtitle_max_line_chars=20, subtitle_max_lines=1)
    assert prefs.options().word_timestamps  # subtitles on completion: jobs get word timestamps
    assert not Preferences(auto_export_formats=("txt",)).options().word_timestamps
    notes = auto_export(jfk_transcript(), tmp_path / "jfk.flac", prefs)
    assert notes == [f"exported {tmp_path / 'jfk.srt'}", f"exported {tmp_path / 'jfk.txt'}"]
    subs = pysubs2.load(str(tmp_path / "jfk.srt"))
    assert len(subs) > 2 and all(len(e.plaintext) <= 20 and "\n" not in e.plaintext for e in subs)

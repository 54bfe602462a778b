"""The editor's power tools as a user drives them: shift times, re-transcribe a region (real tiny.en),
fit to subtitle rules, karaoke while playing, uncertain words marked, karaoke export. One undo step each."""

from __future__ import annotations

import re
from pathlib import Path

import pysubs2
import pytest
from editor_fixtures import jfk_transcript
from PySide6.QtCore import QItemSelectionModel
from PySide6.QtGui import QColor, QImage

from gui.editor import KARAOKE_COLOUR, TEXT, UNCERTAIN_COLOUR, TranscriptEditor
from worker.jobs.preferences import Preferences
from worker.transcripts.model import Transcript
from worker.transcripts.subtitles import SubtitleRules

TIME_TOLERANCE_S = 0.15  # how far an engine-computed time may move between runs (0.04 seen under load)


@pytest.fixture
def editor(qtbot, jfk: Path, lent_backend) -> TranscriptEditor:
    """An editor showing tiny.en's jfk transcript (its source is the real recording), re-transcribing with the
    module's real local backend."""
    widget = TranscriptEditor()
    qtbot.addWidget(widget)
    transcript = jfk_transcript()
    transcript.source = str(jfk)
    widget.set_transcript(transcript)
    widget.tools.backend_factory = lambda _name: lent_backend
    widget.resize(1000, 420)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def segments_of(editor: TranscriptEditor) -> list[tuple[float, float, str]]:
    return [(s.start, s.end, s.text.strip()) for s in editor.transcript().segments]


def select_rows(editor: TranscriptEditor, rows: list[int]) -> None:
    selection = editor.view.selectionModel()
    selection.clearSelection()
    for row in rows:
        selection.select(editor.model.index(row, TEXT),
                         QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)


def colour_pixels(editor: TranscriptEditor, row: int, colour: QColor, tolerance: int = 12) -> int:
    """Pixels of `colour` painted in the text cell of `row`."""
    image: QImage = editor.view.viewport().grab(editor.view.visualRect(editor.model.index(row, TEXT))).toImage()
    count = 0
    for y in range(image.height()):
        for x in range(image.width()):
            pixel = image.pixelColor(x, y)
            if (abs(pixel.red() - colour.red()) <= tolerance and abs(pixel.green() - colour.green()) <= tolerance
                    and abs(pixel.blue() - colour.blue()) <= tolerance):
                count += 1
    return count


# --- shift -------------------------------------------------------------------------------------------------------

def test_shift_all_segments_and_their_words_in_one_undo_step(qtbot, editor):
    before = editor.transcript()
    assert editor.tools.shift(1.5)
    after = editor.transcript()
    for old, new in zip(before.segments, after.segments):
        assert (new.start, new.end) == (round(old.start + 1.5, 3), round(old.end + 1.5, 3))
        assert [w.start for w in new.words] == [round(w.start + 1.5, 3) for w in old.words]
        assert new.text == old.text
    assert editor.undo_stack.count() == 1
    editor.undo_stack.undo()
    assert editor.transcript().segments == before.segments


def test_shift_only_the_selected_segment_through_the_dialog(qtbot, editor):
    before = segments_of(editor)
    select_rows(editor, [1])
    dialog = editor.tools.open_shift_dialog()
    assert dialog.selected_segments.isEnabled()
    dialog.offset.setValue(-0.25)
    dialog.selected_segments.setChecked(True)
    dialog.accept()
    after = segments_of(editor)
    assert after[0] == before[0]
    assert after[1][:2] == (round(before[1][0] - 0.25, 3), round(before[1][1] - 0.25, 3))
    assert editor.undo_stack.count() == 1


def test_a_shift_before_zero_is_refused_with_a_reason(qtbot, editor):
    before = segments_of(editor)
    assert not editor.tools.shift(-1.0)  # the first segment starts at 0
    assert segments_of(editor) == before and editor.undo_stack.count() == 0
    assert editor.status_label.text().startswith("Not shifted: Shifting by -1.000 s would move segment 1 before")


# --- re-transcribe a region ------------------------------------------------------------------------------------------

def test_retranscribe_the_selected_segment_with_tiny_en_replaces_it_in_one_step(qtbot, editor):
    editor.edit_text(1, "garbled words here")  # a bad passage the user wants transcribed again
    before = editor.transcript()
    select_rows(editor, [1])
    with qtbot.waitSignal(editor.tools.regionFinished, timeout=180_000) as finished:
        assert editor.tools.retranscribe(rows=[1], model="tiny.en", language="en")
    assert finished.args[0] == 1 and finished.args[1] >= 1
    after = editor.transcript()
    assert after.segments[0] == before.segments[0]  # outside the region: untouched
    new = after.segments[1:]
    text = " ".join(s.text for s in new).lower()
    assert "ask what you can do for your country" in re.sub(r"[^a-z ]", "", text)
    assert all(before.segments[1].start <= s.start < s.end <= before.segments[1].end + 0.001 for s in new)
    assert all(s.words for s in new)  # word timestamps, on the file's clock
    assert new[0].words[0].start >= before.segments[1].start
    assert editor.undo_stack.count() == 2
    editor.undo_stack.undo()
    assert editor.transcript().segments == before.segments


def test_retranscribe_a_time_range_with_another_model_widens_to_whole_segments(qtbot, editor):
    before = editor.transcript()
    with qtbot.waitSignal(editor.tools.regionFinished, timeout=300_000) as finished:
        # the multilingual base model (the `multilingual` extra, offline), told the language
        assert editor.tools.retranscribe(time_range=(2.0, 4.0), model="base", language="en")
    assert finished.args[0] == 1  # the range lies inside segment 1: the whole segment is redone
    after = editor.transcript()
    untouched = [(s.start, s.end, s.text, s.words) for s in (after.segments[-1], before.segments[-1])]
    assert untouched[0] == untouched[1] and len(after.segments) == finished.args[1] + 1
    assert all(s.end <= before.segments[0].end + 0.001 for s in after.segments[:-1])
    assert "ask not what your country" in re.sub(r"[^a-z ]", "", " ".join(s.text for s in after.segments[:-1]).lower())


def test_retranscribe_refuses_an_edit_made_meanwhile_and_a_missing_file(qtbot, editor, tmp_path):
    before_rows = editor.model.rowCount()
    with qtbot.waitSignal(editor.tools.regionFailed, timeout=180_000) as failed:
        assert editor.tools.retranscribe(rows=[0], model="tiny.en")
        editor.edit_text(0, "typed while it ran")
    assert failed.args[0] == "The segments changed while they were re-transcribed; nothing was replaced."
    assert editor.model.rowCount() == before_rows and editor.transcript().segments[0].text.strip() == "typed while it ran"

    gone = jfk_transcript()
    gone.source = str(tmp_path / "moved away.flac")
    editor.set_transcript(gone)
    with qtbot.waitSignal(editor.tools.regionFailed, timeout=60_000) as failed:
        assert editor.tools.retranscribe(rows=[0])
    assert failed.args[0].startswith("Not re-transcribed: moved away.flac") and "\n" not in failed.args[0]
    assert editor.undo_stack.count() == 0


def test_cancel_a_retranscription_from_the_tools_menu(qtbot, editor):
    before = editor.transcript()
    with qtbot.waitSignal(editor.tools.regionFailed, timeout=120_000) as failed:
        assert editor.tools.retranscribe(rows=[0, 1], model="tiny.en")
        editor.tools.update_actions()
        assert editor.tools.cancel_region_action.isEnabled() and not editor.tools.region_action.isEnabled()
        editor.tools.cancel_region_action.trigger()
    assert failed.args[0] == "Re-transcription cancelled; nothing was replaced."
    assert editor.transcript().segments == before.segments and editor.undo_stack.count() == 0
    editor.tools.update_actions()
    assert editor.tools.region_action.isEnabled() and not editor.tools.cancel_region_action.isEnabled()


def test_the_region_dialog_reads_a_time_range(qtbot, editor):
    dialog = editor.tools.open_region_dialog()
    assert not dialog.selection.isEnabled() and dialog.time_range.isChecked()
    dialog.start_edit.setText("00:00:08.000")
    dialog.end_edit.setText("00:00:10.000")
    dialog.model.setCurrentText("tiny.en")
    assert dialog.request() == {"backend": "local", "model": "tiny.en", "language": "en", "word_timestamps": True,
                                "time_range": (8.0, 10.0)}
    dialog.reject()


# --- fit to subtitle rules ------------------------------------------------------------------------------------------

def test_fit_to_subtitle_rules_recuts_the_segments_in_one_undo_step(qtbot, editor):
    before = editor.transcript()
    with qtbot.waitSignal(editor.tools.fitFinished, timeout=60_000) as finished:
        assert editor.tools.fit_to_rules(SubtitleRules(max_line_chars=20, max_lines=1))
    report = finished.args[0]
    after = editor.transcript()
    assert len(after.segments) > len(before.segments)
    assert all(len(s.text.strip()) <= 20 for s in after.segments)
    assert " ".join(after.text.split()) == " ".join(before.text.split())  # the words are unchanged
    assert all(b.start >= a.end for a, b in zip(after.segments, after.segments[1:]))  # no overlap
    assert all(s.words for s in after.segments)
    assert "\n" not in report and editor.status_label.text().startswith("Fitted to subtitle rules:")
    assert editor.undo_stack.count() == 1
    editor.undo_stack.undo()
    assert editor.transcript().segments == before.segments


def test_fit_computes_the_word_timestamps_an_edit_removed_from_the_audio(qtbot, editor):
    editor.edit_text(1, "ask what you can do for your planet")  # the words no longer spell the text
    assert not editor.transcript().segments[1].words
    with qtbot.waitSignal(editor.tools.fitFinished, timeout=120_000) as finished:
        assert editor.tools.fit_to_rules(SubtitleRules(max_line_chars=16, max_lines=1))
    assert "timed by characters" not in finished.args[0]
    after = editor.transcript().segments
    assert all(s.words for s in after)  # aligned to the audio, then cut
    planet = next(w for s in after for w in s.words if w.text.strip() == "planet")
    assert 9.9 <= planet.start <= 10.6  # where "country" is spoken in jfk.flac
    assert " ".join(s.text.strip() for s in after).endswith("for your planet")
    assert editor.undo_stack.count() == 2


def test_fit_uses_the_rules_in_preferences(qtbot, jfk):
    Preferences(subtitle_max_line_chars=15, subtitle_max_lines=2).save()
    widget = TranscriptEditor()
    qtbot.addWidget(widget)
    widget.set_transcript(jfk_transcript())
    with qtbot.waitSignal(widget.tools.fitFinished, timeout=60_000):
        assert widget.tools.fit_to_rules()
    fitted = widget.transcript().segments
    assert len(fitted) > 2 and all(len(s.text.strip()) <= 2 * 15 + 1 for s in fitted)  # two lines of 15


# --- karaoke ------------------------------------------------------------------------------------------------------------

def test_the_word_under_the_playhead_is_highlighted(qtbot, editor):
    segment = editor.transcript().segments[0]
    index = next(i for i, w in enumerate(segment.words) if w.text.strip() == "Americans")
    word = segment.words[index]
    assert editor.highlight_time((word.start + word.end) / 2) == 0
    assert editor.tools.spoken == (0, index)
    html = editor.tools.cell_html(0)
    assert re.search(r'<span style="background-color:#ffd54f[^"]*">Americans</span>', html)
    qtbot.waitUntil(lambda: colour_pixels(editor, 0, KARAOKE_COLOUR) > 50, timeout=5000)
    assert colour_pixels(editor, 1, KARAOKE_COLOUR) == 0

    editor.highlight_time(editor.transcript().segments[1].words[0].start + 0.01)
    assert editor.tools.spoken == (1, 0)
    qtbot.waitUntil(lambda: colour_pixels(editor, 0, KARAOKE_COLOUR) == 0, timeout=5000)


def test_karaoke_follows_real_playback(qtbot, editor, jfk):
    from gui.player import Player

    player = Player(editor)
    player.positionChanged.connect(editor.highlight_time)
    seen: list[tuple[int, int]] = []
    player.positionChanged.connect(lambda _s: seen.append(editor.tools.spoken))
    player.play_from(jfk, 0.0)
    qtbot.waitUntil(lambda: player.position() >= 3.0, timeout=20_000)
    player.pause()
    words = {w for row, w in seen if row == 0 and w >= 0}
    assert len(words) >= 3  # the highlight moved from word to word
    position = player.position()
    editor.highlight_time(position)
    row, word = editor.tools.spoken
    if row >= 0:
        spoken = editor.transcript().segments[row].words[word]
        assert spoken.start <= position
    player.stop()


# --- uncertain words --------------------------------------------------------------------------------------------------

def test_uncertain_words_are_marked_with_the_threshold_from_preferences(qtbot, jfk):
    transcript = jfk_transcript()
    probabilities = sorted(w.probability for s in transcript.segments for w in s.words)
    threshold = probabilities[len(probabilities) // 3]  # about a third of the words fall below
    Preferences(mark_low_confidence=True, low_confidence_threshold=threshold).save()
    widget = TranscriptEditor()
    qtbot.addWidget(widget)
    widget.set_transcript(transcript)
    widget.resize(1000, 420)
    widget.show()
    qtbot.waitExposed(widget)
    assert widget.tools.uncertain_action.isChecked()
    for row, segment in enumerate(transcript.segments):
        html = widget.tools.cell_html(row) or ""
        marked = re.findall(r'<span style="text-decoration:underline;color:#c62828">([^<]*)</span>', html)
        assert marked == [w.text.strip() for w in segment.words if w.probability < threshold]
    assert any(widget.tools.cell_html(row) for row in range(len(transcript.segments)))
    row = next(r for r in range(len(transcript.segments)) if widget.tools.cell_html(r))
    qtbot.waitUntil(lambda: colour_pixels(widget, row, UNCERTAIN_COLOUR, tolerance=40) > 10, timeout=5000)
    widget.tools.uncertain_action.trigger()  # off
    assert not widget.tools.mark_uncertain and widget.tools.cell_html(row) is None


# --- karaoke export --------------------------------------------------------------------------------------------------------

def test_karaoke_export_writes_ass_with_k_tags_and_vtt_with_word_times(qtbot, editor, tmp_path):
    import av

    transcript: Transcript = editor.transcript()
    words = transcript.text.split()
    with qtbot.waitSignal(editor.tools.karaokeExported, timeout=30_000):
        assert editor.tools.export_karaoke(tmp_path / "jfk.ass")
    subs = pysubs2.load(str(tmp_path / "jfk.ass"))
    assert sum(len(re.findall(r"\{\\k\d+\}", e.text)) for e in subs) == len(words)
    assert " ".join(e.plaintext.replace("\n", " ") for e in subs).split() == words

    with qtbot.waitSignal(editor.tools.karaokeExported, timeout=30_000):
        assert editor.tools.export_karaoke(tmp_path / "jfk.vtt")
    text = (tmp_path / "jfk.vtt").read_text(encoding="utf-8")
    stamps = re.findall(r"<(\d\d:\d\d:\d\d\.\d\d\d)>", text)
    assert len(stamps) >= len(words) - 2 * len(pysubs2.load(str(tmp_path / "jfk.vtt")))
    with av.open(str(tmp_path / "jfk.vtt")) as container:  # FFmpeg reads it
        stream = container.streams.subtitles[0]
        assert sum(1 for packet in container.demux(stream) if packet.pts is not None) == len(pysubs2.load(str(tmp_path / "jfk.vtt")))
    assert not editor.tools.export_karaoke(tmp_path / "jfk.srt")
    assert "karaoke is written as vtt or ass" in editor.status_label.text()


# --- the same rules in the export dialog and in Preferences ---------------------------------------------------------------

def test_export_dialog_takes_its_rule_defaults_from_preferences_and_reports_what_could_not_hold(qtbot, tmp_path):
    from gui.export_dialog import ExportDialog

    Preferences(subtitle_max_line_chars=24, subtitle_max_lines=1, subtitle_max_cps=9.0, subtitle_min_duration_ms=1500,
                subtitle_min_gap_ms=120).save()
    dialog = ExportDialog([(jfk_transcript(), "/talks/jfk.flac")], folder=tmp_path, formats=["srt", "txt"],
                          ask_overwrite=lambda _existing: "overwrite")
    qtbot.addWidget(dialog)
    assert dialog.rules() == SubtitleRules(max_line_chars=24, max_lines=1, max_cps=9.0, min_duration_ms=1500,
                                           min_gap_ms=120)
    with qtbot.waitSignal(dialog.exportFinished, timeout=30_000):
        dialog.export_button.click()
    subs = pysubs2.load(str(tmp_path / "jfk.srt"))
    assert all(len(e.plaintext) <= 24 and "\n" not in e.plaintext for e in subs)
    assert all(b.start - a.end >= 120 for a, b in zip(subs, subs[1:]))
    assert "cues exceed 9 characters per second" in dialog.summary.toPlainText()  # jfk speaks faster than 9 cps
    assert (tmp_path / "jfk.txt").read_text(encoding="utf-8").split() == jfk_transcript().text.split()


def test_preferences_dialog_edits_the_subtitle_rules_and_the_threshold(qtbot):
    from gui.settings import SettingsDialog

    dialog = SettingsDialog(Preferences())
    qtbot.addWidget(dialog)
    dialog.subtitle_chars.setValue(32)
    dialog.subtitle_cps.setValue(20.0)
    dialog.mark_uncertain.setChecked(True)
    dialog.uncertain_threshold.setValue(0.35)
    prefs = dialog.preferences()
    assert prefs.subtitle_rules() == SubtitleRules(max_line_chars=32, max_cps=20.0)
    assert prefs.mark_low_confidence and prefs.low_confidence_threshold == 0.35


# --- the Qt-free rules behind the tools (worker.transcripts.editing) ---------------------------------------------------------------------

def test_regions_words_under_the_playhead_and_shifts_without_qt():
    from worker.transcripts.editing import region_for, shift_segments, word_at, word_spans

    # the engine's times move by a few hundredths from run to run (threads under load): the tests read them from
    # the transcript, and check them against the recording within TIME_TOLERANCE_S
    segments = jfk_transcript().segments  # about 0.00-7.54 "And so my fellow Americans…" and 8.06-10.50 "ask what…"
    first, second = segments
    assert second.text.strip().lower().startswith("ask what you can do")
    assert second.start == pytest.approx(8.06, abs=TIME_TOLERANCE_S) and second.end == pytest.approx(10.5, abs=TIME_TOLERANCE_S)
    assert first.end < second.start  # the pause before "ask what"
    assert region_for(segments, rows=[1]) == (1, 2, second.start, second.end)
    assert region_for(segments, time_range=(7.0, 9.0)) == (0, 2, first.start, second.end)  # widened to whole segments
    pause = (round(first.end + 0.01, 3), round(second.start - 0.01, 3))
    assert region_for(segments, time_range=pause) == (1, 1, *pause)  # a gap: nothing replaced, new inserted
    with pytest.raises(ValueError):
        region_for(segments, time_range=(5.0, 5.0))

    # the word under the playhead: "fellow" while it is spoken, none before the first word or after the last
    fellow = next(i for i, w in enumerate(first.words) if w.text.strip(" ,.").lower() == "fellow")
    assert first.words[fellow].start == pytest.approx(1.46, abs=TIME_TOLERANCE_S)  # "And so my fellow": 1.46-1.76 s
    assert word_at(first, (first.words[fellow].start + first.words[fellow].end) / 2) == fellow
    assert word_at(first, first.words[0].start - 0.1) == -1 and word_at(first, first.words[0].start) == 0
    assert word_at(first, first.words[-1].end + 0.05) == -1  # after the last word
    spans = word_spans(first)
    assert [first.text.strip()[a:b] for a, b in spans] == [w.text.strip() for w in first.words]

    # shifting: every time moves by the offset; a shift past the start of the file is refused
    moved = shift_segments(segments, [1], -8.0)
    assert list(moved) == [1] and moved[1].start == round(second.start - 8.0, 3)
    assert moved[1].words[0].start == round(second.words[0].start - 8.0, 3)
    with pytest.raises(ValueError, match="segment 2 before 00:00:00.000"):
        shift_segments(segments, [1], -round(second.start + 0.05, 3))

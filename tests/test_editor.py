"""The transcript editor, driven like a user would: in-place edits, undo/redo, find/replace, clipboard,
saving to the library as edits happen (and surviving a killed app)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from editor_fixtures import jfk_transcript
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QLineEdit, QPlainTextEdit

from gui.editor import END, START, TEXT, TranscriptEditor
from worker.core.options import TranscriptionOptions
from worker.library.library import Library

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def saved() -> list:
    return []


@pytest.fixture
def editor(qtbot, saved):
    widget = TranscriptEditor(save=saved.append)
    qtbot.addWidget(widget)
    widget.resize(900, 500)
    widget.set_transcript(jfk_transcript())
    widget.show()
    qtbot.waitExposed(widget)
    widget.activateWindow()
    widget.view.setFocus()
    return widget


def texts(editor: TranscriptEditor) -> list[str]:
    return [s.text.strip() for s in editor.transcript().segments]


def open_cell_editor(qtbot, editor: TranscriptEditor, row: int, column: int):
    index = editor.model.index(row, column)
    editor.view.setCurrentIndex(index)
    editor.view.edit(index)
    widget = editor.view.indexWidget(index)  # the open cell editor
    assert isinstance(widget, QPlainTextEdit if column == TEXT else QLineEdit) and widget.isVisible()
    widget.setFocus()
    return widget


def press_enter(qtbot, editor: TranscriptEditor, box) -> None:
    """Enter in a cell editor: Qt commits line edits through a queued call, so wait for the edit to end."""
    qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: editor.view.state() != editor.view.State.EditingState, timeout=2000)


def test_shows_segments_with_times(editor):
    model = editor.model
    assert model.rowCount() == len(jfk_transcript().segments) >= 2
    first = jfk_transcript().segments[0]  # the engine's times, as the table shows them
    assert model.index(0, START).data() == f"00:00:{first.start:06.3f}"
    assert model.index(0, END).data() == f"00:00:{first.end:06.3f}"
    assert model.index(0, TEXT).data() == first.text.strip()
    assert not editor.is_edited() and editor.transcript() == jfk_transcript()


def test_edit_text_in_place_then_undo_and_redo(qtbot, editor, saved):
    box = open_cell_editor(qtbot, editor, 0, TEXT)
    box.selectAll()
    qtbot.keyClicks(box, "And so, my fellow Americans:")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert texts(editor)[0] == "And so, my fellow Americans:"
    assert editor.model.is_edited(0) and not editor.model.is_edited(1)
    assert editor.model.index(0, TEXT).data(Qt.ItemDataRole.FontRole).bold()
    assert editor.transcript().segments[0].words == []  # stale word times are not kept
    assert len(saved) == 1 and saved[-1].segments[0].text.strip() == "And so, my fellow Americans:"

    editor.view.setFocus()
    qtbot.keyClick(editor.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert texts(editor)[0] == jfk_transcript().segments[0].text.strip()
    assert editor.transcript().segments[0].words == jfk_transcript().segments[0].words
    assert not editor.is_edited() and saved[-1] == jfk_transcript()
    qtbot.keyClick(editor.view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert texts(editor)[0] == "And so, my fellow Americans:"
    assert len(saved) == 3


def test_shift_enter_adds_a_line_in_the_text(qtbot, editor):
    box = open_cell_editor(qtbot, editor, 1, TEXT)
    box.selectAll()
    qtbot.keyClicks(box, "first")
    qtbot.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClicks(box, "second")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert texts(editor)[1] == "first\nsecond"


def test_edit_times_in_place_and_invalid_times_are_refused(qtbot, editor, saved):
    box = open_cell_editor(qtbot, editor, 0, START)
    box.setText("00:00:00.250")
    press_enter(qtbot, editor, box)
    assert editor.transcript().segments[0].start == 0.25
    assert editor.model.is_edited(0)
    assert len(saved) == 1

    end = editor.transcript().segments[0].end
    for bad, reason in (("00:00:30.000", "after the end"), ("-1", "not a time"), ("soon", "not a time")):
        box = open_cell_editor(qtbot, editor, 0, START)
        box.setText(bad)
        press_enter(qtbot, editor, box)
        assert editor.transcript().segments[0].start == 0.25 and editor.transcript().segments[0].end == end
        assert reason in editor.status_label.text() and editor.status_label.text().startswith("Not changed")
    assert len(saved) == 1 and editor.undo_stack.count() == 1

    assert editor.edit_times(1, "00:00:08.100", "00:00:10.000")
    assert (editor.transcript().segments[1].start, editor.transcript().segments[1].end) == (8.1, 10.0)
    assert not editor.edit_times(1, 11.0, 10.0) and "after the end" in editor.status_label.text()
    assert not editor.edit_times(1, -0.5, 10.0) and "negative" in editor.status_label.text()
    editor.undo_stack.undo()
    editor.undo_stack.undo()
    assert editor.transcript() == jfk_transcript()


def test_split_at_the_cursor_uses_word_times_and_undoes(qtbot, editor):
    original = jfk_transcript()
    box = open_cell_editor(qtbot, editor, 0, TEXT)
    cursor = box.textCursor()
    cursor.setPosition(box.toPlainText().index("ask not"))
    box.setTextCursor(cursor)
    qtbot.keyClick(box, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    segments = editor.transcript().segments
    assert len(segments) == len(original.segments) + 1
    assert segments[0].text.strip().endswith("Americans") and segments[1].text.strip().startswith("ask not")
    ask = next(w for w in original.segments[0].words if w.text.strip() == "ask")
    assert segments[0].end == segments[1].start == ask.start
    assert [s.id for s in segments] == list(range(len(segments)))
    assert editor.current_row() == 1
    editor.undo_stack.undo()
    assert editor.transcript() == original
    editor.undo_stack.redo()
    assert len(editor.transcript().segments) == len(original.segments) + 1


def test_split_without_a_cursor_cuts_near_the_middle_and_merge_joins(qtbot, editor):
    original = jfk_transcript()
    editor.select_row(1)
    editor.split_action.trigger()
    assert len(editor.transcript().segments) == len(original.segments) + 1
    left, right = editor.transcript().segments[1:3]
    assert left.end == right.start and left.start == original.segments[1].start and right.end == original.segments[1].end

    editor.select_row(1)
    editor.view.setFocus()
    qtbot.keyClick(editor.view, Qt.Key.Key_M, Qt.KeyboardModifier.ControlModifier)
    assert editor.transcript().segments[1].text.split() == original.segments[1].text.split()
    assert editor.transcript().segments[1].end == original.segments[1].end
    editor.select_row(0)
    editor.merge_current()
    merged = editor.transcript().segments
    assert len(merged) == 1 and merged[0].text.split() == original.text.split()
    assert (merged[0].start, merged[0].end) == (original.segments[0].start, original.segments[-1].end)
    for _ in range(3):
        editor.undo_stack.undo()
    assert editor.transcript() == original
    editor.select_row(len(original.segments) - 1)
    editor.merge_current()
    assert "no next segment" in editor.status_label.text()


def test_delete_and_insert_with_undo(qtbot, editor, saved):
    original = jfk_transcript()
    editor.select_row(0)
    editor.view.setFocus()
    qtbot.keyClick(editor.view, Qt.Key.Key_Delete)
    assert texts(editor) == [s.text.strip() for s in original.segments[1:]]
    editor.undo_stack.undo()
    assert editor.transcript() == original

    editor.view.selectAll()
    editor.delete_action.trigger()
    assert editor.transcript().segments == []
    editor.undo_stack.undo()
    assert editor.transcript() == original

    editor.select_row(0)
    row = editor.insert_after_current("Applause.")
    inserted = editor.transcript().segments[row]
    assert row == 1 and inserted.text == "Applause."
    assert inserted.start == original.segments[0].end and inserted.end >= inserted.start
    assert editor.model.is_edited(1)
    # Ctrl+I inserts an empty segment and opens its text for typing
    editor.select_row(2)
    editor.view.setFocus()
    qtbot.keyClick(editor.view, Qt.Key.Key_I, Qt.KeyboardModifier.ControlModifier)
    box = editor.view.indexWidget(editor.model.index(3, TEXT))
    assert isinstance(box, QPlainTextEdit) and editor.current_row() == 3
    qtbot.keyClicks(box, "The end.")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert texts(editor)[-1] == "The end."
    assert saved[-1].segments[-1].text == "The end."
    while editor.undo_stack.canUndo():
        editor.undo_stack.undo()
    assert editor.transcript() == original


def test_find_counts_and_options(qtbot, editor):
    qtbot.keyClick(editor.view, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    bar = editor.find_bar
    assert bar.isVisible() and not bar.replace_row.isVisible()
    qtbot.keyClicks(bar.find_edit, "you")
    assert len(bar.matches) == 4 and bar.count_label.text() == "1 of 4 matches"  # you, your, you, your
    bar.word_box.setChecked(True)
    assert len(bar.matches) == 2 and bar.count_label.text() == "1 of 2 matches"
    bar.word_box.setChecked(False)
    bar.find_edit.setText("and")
    assert len(bar.matches) == 1
    bar.case_box.setChecked(True)
    assert bar.matches == [] and bar.count_label.text() == "No matches"
    bar.find_edit.setText("country")
    assert len(bar.matches) == 2 and editor.current_row() == 0
    qtbot.keyClick(bar.find_edit, Qt.Key.Key_Return)
    assert bar.count_label.text() == "2 of 2 matches" and editor.current_row() == 1
    qtbot.keyClick(bar.find_edit, Qt.Key.Key_Escape)
    assert not bar.isVisible()


def test_replace_and_replace_all_in_one_undo_step(qtbot, editor, saved):
    qtbot.keyClick(editor.view, Qt.Key.Key_H, Qt.KeyboardModifier.ControlModifier)
    bar = editor.find_bar
    assert bar.isVisible() and bar.replace_row.isVisible()
    qtbot.keyClicks(bar.find_edit, "country")
    bar.replace_edit.setText("nation")
    bar.replace_button.click()
    assert "nation" in texts(editor)[0] and "country" in texts(editor)[1]
    assert bar.count_label.text() == "1 of 1 match"
    editor.undo_stack.undo()

    bar.find_edit.setText("you")
    bar.word_box.setChecked(True)
    bar.replace_edit.setText("we")
    saves = len(saved)
    bar.replace_all_button.click()
    assert "Replaced 2 matches" in editor.status_label.text()
    assert " ".join(texts(editor)).count(" we ") == 2 and "your" in " ".join(texts(editor))
    assert bar.matches == [] and len(saved) == saves + 1
    assert editor.undo_stack.count() == 1  # the replace was undone, replace all is one step
    editor.undo_stack.undo()
    assert editor.transcript() == jfk_transcript()


def test_copy_selected_segments_and_everything(qtbot, editor):
    clipboard = QGuiApplication.clipboard()
    original = jfk_transcript()
    editor.view.selectionModel().select(editor.model.index(1, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
    editor.view.setFocus()
    qtbot.keyClick(editor.view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert clipboard.text() == original.segments[1].text.strip()
    editor.view.selectAll()
    qtbot.keyClick(editor.view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert clipboard.text().split("\n") == [s.text.strip() for s in original.segments]
    clipboard.clear()
    editor.copy_all_action.trigger()
    assert clipboard.text().split() == original.text.split()


def test_clicking_a_segment_asks_to_play_from_its_start(qtbot, editor):
    index = editor.model.index(1, TEXT)
    rect = editor.view.visualRect(index)
    with qtbot.waitSignal(editor.segmentActivated, timeout=2000) as blocker:
        qtbot.mouseClick(editor.view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert blocker.args == [jfk_transcript().segments[1].start]


def test_highlight_follows_the_time(editor):
    first, second = jfk_transcript().segments[:2]
    assert editor.highlight_time(first.start + 0.5) == 0 and editor.highlighted_row == 0
    assert editor.model.index(0, TEXT).data(Qt.ItemDataRole.BackgroundRole) is not None
    assert editor.highlight_time(second.start + 0.1) == 1
    assert editor.model.index(0, TEXT).data(Qt.ItemDataRole.BackgroundRole) is None
    assert editor.highlight_time(999.0) == -1


def test_revert_to_original_and_edit_marks(qtbot, editor, saved):
    editor.edit_text(0, "Changed")
    editor.edit_text(1, "Also changed")
    assert editor.is_edited() and editor.revert_action.isEnabled()
    editor.revert_action.trigger()
    assert editor.transcript() == jfk_transcript() and not editor.is_edited()
    assert not any(editor.model.is_edited(r) for r in range(editor.model.rowCount()))
    assert saved[-1] == jfk_transcript()
    editor.undo_stack.undo()  # the revert itself can be undone
    assert texts(editor)[:2] == ["Changed", "Also changed"]


def test_a_running_jobs_transcript_is_read_only_and_grows(qtbot, saved):
    widget = TranscriptEditor(save=saved.append)
    qtbot.addWidget(widget)
    partial = jfk_transcript()
    full = jfk_transcript()
    partial.segments = partial.segments[:1]
    widget.set_transcript(partial, job_id=7)
    assert not widget.model.flags(widget.model.index(0, TEXT)) & Qt.ItemFlag.ItemIsEditable
    assert not widget.edit_text(0, "nope") and texts(widget)[0] == partial.segments[0].text.strip()
    widget.set_transcript(full, job_id=7)
    assert widget.model.rowCount() == len(full.segments)
    widget.set_transcript(full, original=full, job_id=7)  # finished: editable
    assert widget.model.flags(widget.model.index(0, TEXT)) & Qt.ItemFlag.ItemIsEditable
    assert widget.edit_text(0, "yes") and saved[-1].segments[0].text.strip() == "yes"


def test_edits_are_saved_to_the_library_and_revert_restores(qtbot, tmp_path):
    path = tmp_path / "library.sqlite3"
    library = Library(path)
    job = library.jobs.add("/work/shared/audio/jfk.flac", TranscriptionOptions(), "local")
    library.transcripts.save(job.id, jfk_transcript())
    widget = TranscriptEditor(library=library)
    qtbot.addWidget(widget)
    widget.set_transcript(library.transcripts.get(job.id), original=library.transcripts.original(job.id), job_id=job.id)
    widget.edit_text(0, "Edited first segment")
    widget.select_row(1)
    widget.split_current()
    assert widget.flush_saves()  # written off the GUI thread, in order
    library.close()

    reopened = Library(path)
    assert reopened.transcripts.is_edited(job.id)
    stored = reopened.transcripts.get(job.id)
    assert stored == widget.transcript()
    assert stored.segments[0].text.strip() == "Edited first segment" and len(stored.segments) == 3
    assert reopened.transcripts.original(job.id) == jfk_transcript()

    widget.library = reopened
    widget.revert_to_original()
    assert widget.flush_saves()
    reopened.close()
    again = Library(path)
    assert not again.transcripts.is_edited(job.id) and again.transcripts.get(job.id) == jfk_transcript()
    again.close()


def test_an_edit_survives_killing_the_app(tmp_path):
    path = tmp_path / "library.sqlite3"
    library = Library(path)
    job = library.jobs.add("/work/shared/audio/jfk.flac", TranscriptionOptions(), "local")
    library.transcripts.save(job.id, jfk_transcript())
    library.close()
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        from PySide6.QtWidgets import QApplication
        from gui.editor import TranscriptEditor
        from worker.library.library import Library
        app = QApplication([])
        library = Library({str(path)!r})
        editor = TranscriptEditor(library=library)
        editor.set_transcript(library.transcripts.get({job.id}), original=library.transcripts.original({job.id}), job_id={job.id})
        editor.edit_text(1, "ask what you can do for your planet")
        assert editor.flush_saves()  # written in the background within moments
        print("edited", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]
    assert "edited" in result.stdout
    reopened = Library(path)
    assert reopened.transcripts.get(job.id).segments[1].text == " ask what you can do for your planet"
    reopened.close()

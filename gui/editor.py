"""The transcript editor: segments in a table, edited in place, every change an undoable command.

TranscriptEditor(parent=None, save=None, library=None)
    set_transcript(transcript, original=None, job_id=None, read_only=None); transcript() -> Transcript
    highlight_time(seconds): marks (and scrolls to) the segment under the playhead
    signals: transcriptEdited(Transcript) after every committed change (edit, undo, redo, revert),
             segmentActivated(float start_s) when a segment is clicked, statusMessage(str)

Edits are saved as they happen: `save(transcript)` is called after each change and, with a `library`
and a job id, Library.save_edit (or revert_edit once the text is back to the original) is written too, off the
GUI thread and in order (gui/edit_saver.py); flush_saves() waits for those writes.
The data operations (split, merge, find, replace, time parsing) live in worker/transcripts/editing.py.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Callable

from PySide6.QtCore import (
    QAbstractTableModel,
    QEvent,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAction,
    QColor,
    QFont,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QPalette,
    QTextCursor,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.edit_saver import EditSaver
from gui.icons import icon
from gui.speaker_commands import SpeakerEdit, speaker_data, speaker_set_data
from worker.speakers.edits import without_embeddings
from worker.transcripts.editing import (
    Match,
    find_matches,
    format_timestamp,
    merge_segments,
    parse_timestamp,
    replace_all,
    split_segment,
    validate_times,
    words_match_text,
)
from worker.transcripts.model import Segment, Speaker, Transcript, Word

START, END, TEXT, SPEAKER = 0, 1, 2, 3  # the Speaker column is shown before the text (gui/speakers_panel.py)
HEADERS = ("Start", "End", "Text", "Speaker")


def _key(segment: Segment) -> tuple[float, float, str, str | None]:
    return (round(segment.start, 3), round(segment.end, 3), segment.text.strip(), segment.speaker)


def _copy_segment(segment: Segment) -> Segment:
    """A deep copy, much faster than copy.deepcopy (transcripts of hours hold tens of thousands of words)."""
    return Segment(segment.id, segment.start, segment.end, segment.text,
                   [Word(w.start, w.end, w.text, w.probability) for w in segment.words], segment.speaker)


def _copy_segments(segments: list[Segment]) -> list[Segment]:
    return [_copy_segment(s) for s in segments]


def _metadata(transcript: Transcript) -> Transcript:
    """The transcript without its segments (language, model, timings…)."""
    return Transcript(segments=[], language=transcript.language, duration=transcript.duration, model=transcript.model,
                      backend=transcript.backend, timings=copy.deepcopy(transcript.timings), source=transcript.source)


# --- the model ----------------------------------------------------------------------------------------------

class SegmentTableModel(QAbstractTableModel):
    """Segments as rows (start, end, text). Changes made through setData (the view's editors) become
    undo commands on `stack`; the underscore methods change the data and are used by the commands."""

    rejected = Signal(str)  # an edit refused by validation: the reason
    speakersChanged = Signal()  # a speaker renamed, merged, added (gui.speaker_commands.SpeakerEdit)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._segments: list[Segment] = []
        self._original_keys: set[tuple[float, float, str, str | None]] = set()
        self.speakers: list[Speaker] = []  # the transcript's speakers, as edited
        self.stack: QUndoStack | None = None
        self.playing_row = -1
        self.read_only = False

    # reading
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._segments)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def segment(self, row: int) -> Segment:
        return self._segments[row]

    def segments(self) -> list[Segment]:
        return _copy_segments(self._segments)

    def texts(self) -> list[str]:
        return [s.text.strip() for s in self._segments]

    def is_edited(self, row: int) -> bool:
        return _key(self._segments[row]) not in self._original_keys

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._segments):
            return None
        segment, column = self._segments[index.row()], index.column()
        if column == SPEAKER and role != Qt.ItemDataRole.FontRole:
            return speaker_data(self, index.row(), role)
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            if column == START:
                return format_timestamp(segment.start)
            if column == END:
                return format_timestamp(segment.end)
            return segment.text.strip()
        if role == Qt.ItemDataRole.FontRole and self.is_edited(index.row()):
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.BackgroundRole:
            if index.row() == self.playing_row:
                colour = QColor(QGuiApplication.palette().color(QPalette.ColorRole.Highlight))
                colour.setAlpha(90)
                return colour
            if self.is_edited(index.row()):
                return QColor(255, 200, 0, 45)  # a light amber tint: changed since the original
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = "Edited (bold): differs from the original transcript." if self.is_edited(index.row()) else ""
            if column == TEXT:
                return "\n".join(t for t in (tip, "Double-click to edit; Enter commits, Shift+Enter adds a line.") if t)
            return "\n".join(t for t in (tip, "HH:MM:SS.mmm; double-click to edit.") if t)
        if role == Qt.ItemDataRole.TextAlignmentRole and column != TEXT:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return HEADERS[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return f"▶ {section + 1}" if section == self.playing_row else str(section + 1)
        if role == Qt.ItemDataRole.ToolTipRole and section == self.playing_row:
            return "Playing"
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        flags = super().flags(index)
        if index.isValid() and not self.read_only:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    # editing (from the view): validated, then pushed as an undo command
    def setData(self, index: QModelIndex | QPersistentModelIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or self.read_only:
            return False
        row, column = index.row(), index.column()
        segment = self._segments[row]
        if column == SPEAKER:
            return speaker_set_data(self, row, value)
        if column == TEXT:
            text = str(value).strip()
            if text == segment.text.strip():
                return False
            return self._push(EditText(self, row, text))
        try:
            seconds = parse_timestamp(str(value))
        except ValueError as exc:
            self.rejected.emit(f"Not changed: {exc}")
            return False
        start, end = (seconds, segment.end) if column == START else (segment.start, seconds)
        if (round(start, 3), round(end, 3)) == (round(segment.start, 3), round(segment.end, 3)):
            return False
        problem = validate_times(start, end)
        if problem:
            self.rejected.emit(f"Not changed: {problem}")
            return False
        return self._push(EditTimes(self, row, start, end))

    def _push(self, command: QUndoCommand) -> bool:
        if self.stack is None:
            command.redo()
        else:
            self.stack.push(command)
        return True

    # changes used by the commands (no validation, no undo)
    def _reset(self, segments: list[Segment], original: list[Segment]) -> None:
        self.beginResetModel()
        self._segments = _copy_segments(segments)
        self._original_keys = {_key(s) for s in original}
        self.playing_row = -1
        self.endResetModel()

    def _append(self, segments: list[Segment]) -> None:
        if not segments:
            return
        first = len(self._segments)
        self.beginInsertRows(QModelIndex(), first, first + len(segments) - 1)
        self._segments.extend(_copy_segments(segments))
        self._original_keys.update(_key(s) for s in segments)
        self.endInsertRows()

    def _row_changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, SPEAKER))

    def _set_segment(self, row: int, segment: Segment) -> None:
        self._segments[row] = _copy_segment(segment)
        self._row_changed(row)

    def _replace_rows(self, row: int, count: int, new: list[Segment]) -> None:
        if count:
            self.beginRemoveRows(QModelIndex(), row, row + count - 1)
            del self._segments[row:row + count]
            self.endRemoveRows()
        if new:
            self.beginInsertRows(QModelIndex(), row, row + len(new) - 1)
            self._segments[row:row] = _copy_segments(new)
            self.endInsertRows()
        self.playing_row = -1

    def _set_playing_row(self, row: int) -> None:
        if row == self.playing_row:
            return
        previous, self.playing_row = self.playing_row, row
        for changed in (previous, row):
            if 0 <= changed < len(self._segments):
                self._row_changed(changed)
                self.headerDataChanged.emit(Qt.Orientation.Vertical, changed, changed)


# --- undo commands ----------------------------------------------------------------------------------------

class EditText(QUndoCommand):
    """Change one segment's text. Word timestamps are kept only while they still spell the text."""

    def __init__(self, model: SegmentTableModel, row: int, text: str) -> None:
        super().__init__(f"Edit text of segment {row + 1}")
        self.model, self.row = model, row
        self.before = _copy_segment(model.segment(row))
        self.after = _copy_segment(self.before)
        self.after.text = (" " + text) if self.before.text[:1] == " " and text else text
        if self.after.words and not words_match_text(self.after):
            self.after.words = []

    def redo(self) -> None:
        self.model._set_segment(self.row, self.after)

    def undo(self) -> None:
        self.model._set_segment(self.row, self.before)


class EditTimes(QUndoCommand):
    """Change one segment's start and end (validate first: validate_times)."""

    def __init__(self, model: SegmentTableModel, row: int, start: float, end: float) -> None:
        super().__init__(f"Change times of segment {row + 1}")
        self.model, self.row = model, row
        self.before = _copy_segment(model.segment(row))
        self.after = _copy_segment(self.before)
        self.after.start, self.after.end = round(start, 3), round(end, 3)

    def redo(self) -> None:
        self.model._set_segment(self.row, self.after)

    def undo(self) -> None:
        self.model._set_segment(self.row, self.before)


class _ReplaceRows(QUndoCommand):
    """Rows [row, row + len(before)) become `after` (and back on undo)."""

    def __init__(self, label: str, model: SegmentTableModel, row: int, before: list[Segment], after: list[Segment]) -> None:
        super().__init__(label)
        self.model, self.row = model, row
        self.before, self.after = _copy_segments(before), _copy_segments(after)

    def redo(self) -> None:
        self.model._replace_rows(self.row, len(self.before), self.after)

    def undo(self) -> None:
        self.model._replace_rows(self.row, len(self.after), self.before)


class SplitSegment(_ReplaceRows):
    """Split a segment before character `char_index` of its displayed (stripped) text; the time is split
    at the word there (word timestamps) or in proportion to the characters. ValueError if a side is empty."""

    def __init__(self, model: SegmentTableModel, row: int, char_index: int) -> None:
        segment = model.segment(row)
        leading = len(segment.text) - len(segment.text.lstrip())
        left, right = split_segment(segment, char_index + leading)
        super().__init__(f"Split segment {row + 1}", model, row, [segment], [left, right])


class MergeWithNext(_ReplaceRows):
    def __init__(self, model: SegmentTableModel, row: int) -> None:
        if not 0 <= row < model.rowCount() - 1:
            raise ValueError("There is no next segment to merge with.")
        first, second = model.segment(row), model.segment(row + 1)
        super().__init__(f"Merge segments {row + 1} and {row + 2}", model, row, [first, second], [merge_segments(first, second)])


class InsertSegment(_ReplaceRows):
    def __init__(self, model: SegmentTableModel, row: int, segment: Segment) -> None:
        super().__init__(f"Insert segment {row + 1}", model, row, [], [segment])


class DeleteSegments(QUndoCommand):
    def __init__(self, model: SegmentTableModel, rows: list[int]) -> None:
        rows = sorted(set(rows))
        super().__init__(f"Delete {len(rows)} segment{'s' if len(rows) != 1 else ''}")
        self.model = model
        self.removed = [(row, _copy_segment(model.segment(row))) for row in rows]

    def redo(self) -> None:
        for row, _segment in reversed(self.removed):
            self.model._replace_rows(row, 1, [])

    def undo(self) -> None:
        for row, segment in self.removed:
            self.model._replace_rows(row, 0, [segment])


class ReplaceTexts(QUndoCommand):
    """New texts for several segments as one step (replace all)."""

    def __init__(self, model: SegmentTableModel, texts: dict[int, str], label: str = "Replace all") -> None:
        super().__init__(label)
        self.parts = [EditText(model, row, text) for row, text in sorted(texts.items())]

    def redo(self) -> None:
        for part in self.parts:
            part.redo()

    def undo(self) -> None:
        for part in reversed(self.parts):
            part.undo()


class RevertToOriginal(_ReplaceRows):
    def __init__(self, model: SegmentTableModel, original: list[Segment], speakers: list[Speaker] | None = None) -> None:
        super().__init__("Revert to original", model, 0, model.segments(), original)
        after = Transcript(segments=original, speakers=list(model.speakers if speakers is None else speakers))
        self.speakers = SpeakerEdit("", model, after)  # the original's speakers (names) come back too

    def redo(self) -> None:
        super().redo()
        self.speakers.redo()

    def undo(self) -> None:
        super().undo()
        self.speakers.undo()


# --- delegates ---------------------------------------------------------------------------------------------

class TextDelegate(QStyledItemDelegate):
    """Edits text in a multi-line box: Enter commits, Shift+Enter adds a line, Ctrl+Enter splits at the cursor."""

    splitRequested = Signal(int, int)  # row, cursor position in the edited text

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QWidget:
        editor = QPlainTextEdit(parent)
        editor.setObjectName("segmentTextEditor")
        editor.setTabChangesFocus(True)
        editor.setProperty("row", index.row())
        editor.installEventFilter(self)
        return editor

    def setEditorData(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:
        assert isinstance(editor, QPlainTextEdit)
        editor.setPlainText(str(index.data(Qt.ItemDataRole.EditRole) or ""))
        editor.moveCursor(QTextCursor.MoveOperation.End)

    def setModelData(self, editor: QWidget, model: Any, index: QModelIndex | QPersistentModelIndex) -> None:
        assert isinstance(editor, QPlainTextEdit)
        model.setData(index, editor.toPlainText(), Qt.ItemDataRole.EditRole)

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        rect = option.rect
        rect.setHeight(max(rect.height(), editor.fontMetrics().lineSpacing() * 3 + 10))
        editor.setGeometry(rect)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if isinstance(watched, QPlainTextEdit) and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                modifiers = event.modifiers()
                if modifiers & Qt.KeyboardModifier.ControlModifier:
                    self.splitRequested.emit(int(watched.property("row")), watched.textCursor().position())
                    return True
                if not modifiers & Qt.KeyboardModifier.ShiftModifier:
                    self.commitData.emit(watched)
                    self.closeEditor.emit(watched, QStyledItemDelegate.EndEditHint.NoHint)
                    return True
                watched.insertPlainText("\n")
                return True
        return super().eventFilter(watched, event)


class TimeDelegate(QStyledItemDelegate):
    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QWidget:
        editor = QLineEdit(parent)
        editor.setObjectName("segmentTimeEditor")
        editor.setPlaceholderText("HH:MM:SS.mmm")
        return editor


# --- find and replace ----------------------------------------------------------------------------------------

class FindBar(QWidget):
    """Find (Ctrl+F) and replace (Ctrl+H) in the segment texts, with match count and options."""

    def __init__(self, editor: "TranscriptEditor") -> None:
        super().__init__(editor)
        self.editor = editor
        self.matches: list[Match] = []
        self.current = -1
        self.find_edit = QLineEdit(placeholderText="Find")
        self.find_edit.setObjectName("findText")
        self.find_edit.setClearButtonEnabled(True)
        self.replace_edit = QLineEdit(placeholderText="Replace with")
        self.replace_edit.setObjectName("replaceText")
        self.case_box = QCheckBox("Match case")
        self.word_box = QCheckBox("Whole words")
        self.count_label = QLabel("")
        self.count_label.setObjectName("matchCount")
        self.count_label.setMinimumWidth(90)
        self.previous_button = self._button("Previous", self.find_previous, "Previous match (Shift+Enter)")
        self.next_button = self._button("Next", self.find_next, "Next match (Enter)")
        self.replace_button = self._button("Replace", self.replace_current, "Replace this match and go to the next")
        self.replace_all_button = self._button("Replace all", self.replace_all, "Replace every match (one undo step)")
        self.close_button = self._button("Close", self.close_bar, "Close (Esc)")

        top = QHBoxLayout()
        for widget in (self.find_edit, self.count_label, self.previous_button, self.next_button, self.case_box, self.word_box, self.close_button):
            top.addWidget(widget)
        self.replace_row = QWidget()
        bottom = QHBoxLayout(self.replace_row)
        bottom.setContentsMargins(0, 0, 0, 0)
        for widget in (self.replace_edit, self.replace_button, self.replace_all_button):
            bottom.addWidget(widget)
        bottom.addStretch(0)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addLayout(top)
        layout.addWidget(self.replace_row)

        self.find_edit.textChanged.connect(self._query_changed)
        self.case_box.toggled.connect(self._query_changed)
        self.word_box.toggled.connect(self._query_changed)
        self.find_edit.returnPressed.connect(self.find_next)
        self.replace_edit.returnPressed.connect(self.replace_current)
        self.hide()

    def _button(self, text: str, slot: Callable[[], None], tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    def open_bar(self, replace: bool) -> None:
        self.replace_row.setVisible(replace and not self.editor.model.read_only)
        self.show()
        self.find_edit.setFocus()
        self.find_edit.selectAll()
        self._query_changed()

    def close_bar(self) -> None:
        self.hide()
        self.editor.view.setFocus()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close_bar()
            return
        super().keyPressEvent(event)

    @property
    def options(self) -> tuple[bool, bool]:
        return self.case_box.isChecked(), self.word_box.isChecked()

    def _query_changed(self) -> None:
        """Typing or an option change: recount, and show the first match (incremental find)."""
        self.current = -1
        self.refresh()
        self._show_current()

    def refresh(self) -> None:
        """Recount matches (after any edit too), keeping the current match when it still exists."""
        query = self.find_edit.text()
        self.matches = find_matches(self.editor.model.texts(), query, *self.options)
        if self.current >= len(self.matches):
            self.current = len(self.matches) - 1
        if self.matches and self.current < 0:
            self.current = 0
        if not self.matches:
            self.current = -1
        self._update_label()

    def _update_label(self) -> None:
        if not self.find_edit.text():
            self.count_label.setText("")
        elif not self.matches:
            self.count_label.setText("No matches")
        else:
            total = len(self.matches)
            self.count_label.setText(f"{self.current + 1} of {total} match{'es' if total != 1 else ''}")
        has = bool(self.matches)
        for button in (self.previous_button, self.next_button, self.replace_button, self.replace_all_button):
            button.setEnabled(has)

    def _show_current(self) -> None:
        if 0 <= self.current < len(self.matches):
            self.editor.select_row(self.matches[self.current].row)
        self._update_label()

    def find_next(self) -> None:
        self.refresh()
        if self.matches:
            self.current = (self.current + 1) % len(self.matches)
            self._show_current()

    def find_previous(self) -> None:
        self.refresh()
        if self.matches:
            self.current = (self.current - 1) % len(self.matches)
            self._show_current()

    def replace_current(self) -> None:
        self.refresh()
        if not self.matches or self.editor.model.read_only:
            return
        match = self.matches[max(0, self.current)]
        text = self.editor.model.texts()[match.row]
        new_text = text[:match.start] + self.replace_edit.text() + text[match.end:]
        self.editor.push(EditText(self.editor.model, match.row, new_text))
        self.refresh()
        # go on after the replacement (it may itself contain the searched text)
        after = (match.row, match.start + len(self.replace_edit.text()))
        following = [i for i, m in enumerate(self.matches) if (m.row, m.start) >= after]
        self.current = following[0] if following else (0 if self.matches else -1)
        self._show_current()

    def replace_all(self) -> int:
        if self.editor.model.read_only:
            return 0
        changed, total = replace_all(self.editor.model.texts(), self.find_edit.text(), self.replace_edit.text(), *self.options)
        if total:
            self.editor.push(ReplaceTexts(self.editor.model, changed, f"Replace {total} × “{self.find_edit.text()}”"))
        self.editor.show_status(f"Replaced {total} match{'es' if total != 1 else ''}." if total else "Nothing to replace.")
        self.refresh()
        return total


# --- the editor ---------------------------------------------------------------------------------------------

class TranscriptEditor(QWidget):
    """See the module docstring. `save(transcript)` is called after each committed change."""

    transcriptEdited = Signal(object)  # Transcript
    segmentActivated = Signal(float)  # start seconds of the clicked segment
    statusMessage = Signal(str)

    def __init__(self, parent: QWidget | None = None, save: Callable[[Transcript], None] | None = None,
                 library: Any = None) -> None:
        super().__init__(parent)
        self._save = save
        self.library = library
        self.job_id: int | None = None
        self._transcript: Transcript | None = None  # the metadata (language, model…) of the shown transcript
        self._original: list[Segment] = []
        self._original_speakers: list[Speaker] = []
        self._loading = False

        self.model = SegmentTableModel(self)
        self.undo_stack = QUndoStack(self)
        self.model.stack = self.undo_stack
        self.model.rejected.connect(self.show_status)
        self.saver = EditSaver(self)
        self.saver.failed.connect(self.show_status)

        self.view = QTableView(self)
        self.view.setObjectName("segmentTable")
        self.view.setModel(self.model)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
                                  | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.view.setWordWrap(True)
        self.view.setAlternatingRowColors(True)
        # sizes are set, not measured on every change (ResizeToContents re-measures every row each time)
        header = self.view.horizontalHeader()
        time_width = self.view.fontMetrics().horizontalAdvance("00:00:00.000") + 24
        for column in (START, END):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, time_width)
        header.setSectionResizeMode(TEXT, QHeaderView.ResizeMode.Stretch)
        # wrapped text: a changed row is re-measured; all rows when the text column's width changes
        self._row_heights = QTimer(self)
        self._row_heights.setSingleShot(True)
        self._row_heights.setInterval(0)
        self._row_heights.timeout.connect(self.view.resizeRowsToContents)
        header.sectionResized.connect(lambda section, _old, _new: section == TEXT and self._row_heights.start())
        self.model.modelReset.connect(self._row_heights.start)
        self.model.dataChanged.connect(lambda first, last, _roles=(): self._fit_rows(first.row(), last.row()))
        self.model.rowsInserted.connect(lambda _parent, first, last: self._fit_rows(first, last))
        self.text_delegate = TextDelegate(self.view)
        self.time_delegate = TimeDelegate(self.view)
        self.view.setItemDelegateForColumn(TEXT, self.text_delegate)
        self.view.setItemDelegateForColumn(START, self.time_delegate)
        self.view.setItemDelegateForColumn(END, self.time_delegate)
        self.text_delegate.splitRequested.connect(self._split_from_editor)
        self.view.clicked.connect(self._activated)
        self.view.activated.connect(self._activated)

        self.find_bar = FindBar(self)
        from gui.speakers_panel import SpeakersPanel  # the Speaker column's editor, rename/merge, known voices

        self.speakers = SpeakersPanel(self)
        self.status_label = QLabel("")
        self.status_label.setObjectName("editorStatus")
        self.status_label.setWordWrap(True)

        self._make_actions()
        self.toolbar = QToolBar(self)
        self.toolbar.setObjectName("editorToolbar")
        self.toolbar.setIconSize(QSize(16, 16))
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.undo_action, self.redo_action, None, self.split_action, self.merge_action, self.insert_action,
                       self.delete_action, None, self.find_action, self.replace_action, None, self.copy_all_action,
                       self.revert_action):
            if action is None:
                self.toolbar.addSeparator()
            else:
                self.toolbar.addAction(action)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.find_bar)
        layout.addWidget(self.speakers)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.status_label)

        self.undo_stack.indexChanged.connect(self._committed)
        self.undo_stack.cleanChanged.connect(lambda _clean: self._update_actions())
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.view.selectionModel().currentChanged.connect(lambda *_: self._update_actions())
        self.model.modelReset.connect(self._update_actions)
        self._update_actions()

        from gui.editor_tools import EditorTools  # shift, re-transcribe, fit to rules, karaoke (imports this module)

        self.tools = EditorTools(self)

    # --- actions --------------------------------------------------------------------------------------------

    def _action(self, text: str, icon_name: str | None, slot: Callable[[], Any], shortcuts: list[Any], tip: str,
                on: QWidget | None = None) -> QAction:
        action = QAction(text, self)
        if icon_name:
            action.setIcon(icon(icon_name))
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        # only while the editor (or, for `on`, that widget) has focus: no clash with the window's shortcuts
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut if on is None else Qt.ShortcutContext.WidgetShortcut)
        keys = ", ".join(QKeySequence(s).toString(QKeySequence.SequenceFormat.NativeText) for s in shortcuts)
        action.setToolTip(f"{tip} ({keys})" if keys else tip)
        action.triggered.connect(lambda _checked=False: slot())
        (on or self).addAction(action)
        return action

    def _make_actions(self) -> None:
        self.undo_action = self._action("Undo", None, self.undo_stack.undo, [QKeySequence.StandardKey.Undo], "Undo the last edit")
        self.redo_action = self._action("Redo", None, self.undo_stack.redo,
                                        ["Ctrl+Shift+Z", QKeySequence.StandardKey.Redo], "Redo")
        self.undo_stack.canUndoChanged.connect(self.undo_action.setEnabled)
        self.undo_stack.canRedoChanged.connect(self.redo_action.setEnabled)
        self.undo_stack.undoTextChanged.connect(lambda text: self.undo_action.setToolTip(f"Undo {text}" if text else "Undo (Ctrl+Z)"))
        self.undo_stack.redoTextChanged.connect(lambda text: self.redo_action.setToolTip(f"Redo {text}" if text else "Redo (Ctrl+Shift+Z)"))
        self.split_action = self._action("Split", None, self.split_current, ["Ctrl+Return"],
                                         "Split the segment at the text cursor (or between its middle words)")
        self.merge_action = self._action("Merge", None, self.merge_current, ["Ctrl+M"], "Merge the segment with the next one")
        self.insert_action = self._action("Insert", None, self.insert_after_current, ["Ctrl+I"], "Insert an empty segment after this one")
        self.delete_action = self._action("Delete", "remove", self.delete_selected, [QKeySequence.StandardKey.Delete],
                                          "Delete the selected segments", on=self.view)
        self.find_action = self._action("Find", None, lambda: self.find_bar.open_bar(False), [QKeySequence.StandardKey.Find], "Find text")
        self.replace_action = self._action("Replace", None, lambda: self.find_bar.open_bar(True), ["Ctrl+H"], "Find and replace")
        self.copy_action = self._action("Copy", "copy", self.copy_selected, [QKeySequence.StandardKey.Copy],
                                        "Copy the text of the selected segments", on=self.view)
        self.copy_all_action = self._action("Copy all", "copy", self.copy_all, ["Ctrl+Shift+C"], "Copy the whole transcript")
        self.revert_action = self._action("Revert to original", "retry", self.revert_to_original, [],
                                          "Undo every edit: back to the transcript as transcribed")
        self.undo_action.setEnabled(False)
        self.redo_action.setEnabled(False)

    def _update_actions(self) -> None:
        editable = not self.model.read_only and self._transcript is not None
        row = self.current_row()
        has_rows = self.model.rowCount() > 0
        self.split_action.setEnabled(editable and row >= 0)
        self.merge_action.setEnabled(editable and 0 <= row < self.model.rowCount() - 1)
        self.insert_action.setEnabled(editable)
        self.delete_action.setEnabled(editable and bool(self.selected_rows()))
        self.replace_action.setEnabled(editable)
        self.find_action.setEnabled(has_rows)
        self.copy_action.setEnabled(has_rows)
        self.copy_all_action.setEnabled(has_rows)
        self.revert_action.setEnabled(editable and self.is_edited())

    # --- loading and reading ----------------------------------------------------------------------------------

    def set_transcript(self, transcript: Transcript | None, original: Transcript | None = None, job_id: int | None = None,
                       read_only: bool | None = None) -> None:
        """Show `transcript` (None clears). `original` is what edits are compared with and reverted to
        (default: the transcript itself). `read_only` defaults to True for a running job's partial
        transcript (a job id without an original) and False otherwise. Clears the undo history."""
        if read_only is None:
            read_only = job_id is not None and original is None
        if (transcript is not None and read_only and self.model.read_only and job_id == self.job_id
                and self._is_extension(transcript)):
            self._transcript = _metadata(transcript)
            self.model._append(transcript.segments[self.model.rowCount():])  # live: keep the scroll position
            self.view.scrollToBottom()
            self._update_actions()
            return
        self._loading = True
        try:
            self.job_id = job_id
            self._transcript = _metadata(transcript) if transcript is not None else None
            self._original = _copy_segments((original or transcript).segments) if transcript is not None else []
            self._original_speakers = list((original or transcript).speakers) if transcript is not None else []
            self.model.speakers = list(transcript.speakers) if transcript is not None else []
            self.model.read_only = read_only
            self.model._reset(transcript.segments if transcript is not None else [], self._original)
            self.undo_stack.clear()
            self.undo_stack.setClean()
        finally:
            self._loading = False
        self.status_label.setText("Transcribing… (editable when done)" if read_only and transcript is not None else "")
        self.find_bar.refresh()
        self._update_actions()

    def _is_extension(self, transcript: Transcript) -> bool:
        current = self.model._segments
        return len(transcript.segments) >= len(current) and all(
            _key(a) == _key(b) for a, b in zip(current, transcript.segments))

    def transcript(self) -> Transcript | None:
        """The transcript as edited (a copy; segment ids renumbered), or None when nothing is shown."""
        if self._transcript is None:
            return None
        result = _metadata(self._transcript)
        result.segments = self.model.segments()
        result.speakers = [replace(s) for s in self.model.speakers]
        return result.renumbered()

    def original(self) -> Transcript | None:
        if self._transcript is None:
            return None
        result = _metadata(self._transcript)
        result.segments = _copy_segments(self._original)
        result.speakers = [replace(s) for s in self._original_speakers]
        return result.renumbered()

    def is_edited(self) -> bool:
        """True when the segments (or the speakers' names) differ from the original."""
        current = self.model._segments
        return (len(current) != len(self._original) or any(_key(a) != _key(b) for a, b in zip(current, self._original))
                or without_embeddings(self.model.speakers) != without_embeddings(self._original_speakers))

    # --- committing ---------------------------------------------------------------------------------------------

    def push(self, command: QUndoCommand) -> None:
        """Apply an edit as an undo step (the editor's commands: EditText, SplitSegment…)."""
        if self.model.read_only:
            self.show_status("This transcript cannot be edited while it is being transcribed.")
            return
        self.undo_stack.push(command)

    def _committed(self, _index: int) -> None:
        """After every push, undo and redo: tell listeners and save."""
        if self._loading or self._transcript is None:
            return
        transcript = self.transcript()
        assert transcript is not None
        self.find_bar.refresh()
        self._update_actions()
        self.transcriptEdited.emit(transcript)
        if self._save is not None:
            self._save(transcript)
        if self.library is not None and self.job_id is not None and not self.model.read_only:
            self.saver.save(self.library, self.job_id, transcript if self.is_edited() else None)  # off the GUI thread

    def flush_saves(self, timeout_s: float = 10.0) -> bool:
        """Wait (bounded) until every edit is written to the library: before the library closes."""
        return self.saver.flush(timeout_s)

    def show_status(self, message: str) -> None:
        self.status_label.setText(message)
        self.statusMessage.emit(message)

    # --- rows -----------------------------------------------------------------------------------------------------

    def current_row(self) -> int:
        index = self.view.currentIndex()
        return index.row() if index.isValid() else -1

    def selected_rows(self) -> list[int]:
        model = self.view.selectionModel()
        return sorted({i.row() for i in model.selectedIndexes()}) if model is not None else []

    def select_row(self, row: int, column: int = TEXT) -> None:
        index = self.model.index(row, column)
        self.view.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.view.scrollTo(index)

    def _fit_rows(self, first: int, last: int) -> None:
        if self._row_heights.isActive():
            return  # all rows are about to be measured
        for row in range(first, last + 1):
            self.view.resizeRowToContents(row)

    def _activated(self, index: QModelIndex) -> None:
        if index.isValid():
            self.segmentActivated.emit(float(self.model.segment(index.row()).start))

    # --- edits ------------------------------------------------------------------------------------------------------

    def edit_text(self, row: int, text: str) -> bool:
        return self.model.setData(self.model.index(row, TEXT), text)

    def edit_times(self, row: int, start: float | str, end: float | str) -> bool:
        """Change a segment's times (seconds or 'HH:MM:SS.mmm'). Invalid times are refused with a status
        message and change nothing; returns whether the change was applied."""
        try:
            start_s = parse_timestamp(start) if isinstance(start, str) else round(float(start), 3)
            end_s = parse_timestamp(end) if isinstance(end, str) else round(float(end), 3)
        except ValueError as exc:
            self.show_status(f"Not changed: {exc}")
            return False
        problem = validate_times(start_s, end_s)
        if problem:
            self.show_status(f"Not changed: {problem}")
            return False
        segment = self.model.segment(row)
        if (start_s, end_s) == (round(segment.start, 3), round(segment.end, 3)):
            return False
        self.push(EditTimes(self.model, row, start_s, end_s))
        return True

    def split_at(self, row: int, char_index: int) -> bool:
        """Split segment `row` before character `char_index` of its shown text."""
        try:
            command = SplitSegment(self.model, row, char_index)
        except ValueError as exc:
            self.show_status(str(exc))
            return False
        self.push(command)
        self.select_row(row + 1)
        return True

    def split_current(self) -> None:
        row = self.current_row()
        if row < 0:
            return
        editor = self._open_text_editor()
        if editor is not None:
            self._split_from_editor(row, editor.textCursor().position())
            return
        # no cursor: split between the words nearest the middle
        text = self.model.texts()[row]
        spaces = [i for i, ch in enumerate(text) if ch.isspace()]
        if not spaces:
            self.show_status("Put the cursor between two words to split a segment.")
            return
        self.split_at(row, min(spaces, key=lambda i: abs(i - len(text) / 2)))

    def _open_text_editor(self) -> QPlainTextEdit | None:
        focus = QGuiApplication.focusObject()
        if isinstance(focus, QPlainTextEdit) and focus.objectName() == "segmentTextEditor" and self.isAncestorOf(focus):
            return focus
        return None

    def _split_from_editor(self, row: int, position: int) -> None:
        """Ctrl+Enter while typing: keep the typed text, then split it at the cursor."""
        editor = self._open_text_editor()
        if editor is not None:
            text = editor.toPlainText()
            # text before the cursor, stripped as the model stores it: the cursor moves with the strip
            position -= len(text) - len(text.lstrip())
            self.text_delegate.commitData.emit(editor)
            self.text_delegate.closeEditor.emit(editor, QStyledItemDelegate.EndEditHint.NoHint)
        self.split_at(row, max(0, position))

    def merge_current(self) -> None:
        row = self.current_row()
        try:
            command = MergeWithNext(self.model, row)
        except ValueError as exc:
            self.show_status(str(exc))
            return
        self.push(command)
        self.select_row(row)

    def insert_after_current(self, text: str = "") -> int:
        """Insert a segment after the current one (at the start when none), timed in the gap after it. Returns its row."""
        row = self.current_row()
        segments = self.model._segments
        if row < 0:
            row = len(segments) - 1
        start = segments[row].end if row >= 0 else 0.0
        following = segments[row + 1].start if row + 1 < len(segments) else None
        end = following if following is not None and following > start else start + 2.0
        new = Segment(row + 1, round(start, 3), round(end, 3), text)
        self.push(InsertSegment(self.model, row + 1, new))
        self.select_row(row + 1)
        if not text:
            self.view.edit(self.model.index(row + 1, TEXT))
        return row + 1

    def delete_selected(self) -> None:
        rows = self.selected_rows() or ([self.current_row()] if self.current_row() >= 0 else [])
        if rows:
            self.push(DeleteSegments(self.model, rows))
            if self.model.rowCount():
                self.select_row(min(rows[0], self.model.rowCount() - 1))

    def revert_to_original(self) -> None:
        if self.is_edited():
            self.push(RevertToOriginal(self.model, self._original, self._original_speakers))
            self.show_status("Reverted to the original transcript (Undo brings the edits back).")

    # --- clipboard -----------------------------------------------------------------------------------------

    def copy_selected(self) -> str:
        rows = self.selected_rows() or ([self.current_row()] if self.current_row() >= 0 else [])
        texts = self.model.texts()
        text = "\n".join(texts[row] for row in rows if texts[row])
        QGuiApplication.clipboard().setText(text)
        return text

    def copy_all(self) -> str:
        text = "\n".join(t for t in self.model.texts() if t)
        QGuiApplication.clipboard().setText(text)
        self.show_status("Copied the whole transcript.")
        return text

    # --- playback ----------------------------------------------------------------------------------------------

    def row_at_time(self, seconds: float) -> int:
        """The segment playing at `seconds` (-1 in a gap or past the end)."""
        for row, segment in enumerate(self.model._segments):
            if segment.start <= seconds < segment.end:
                return row
        return -1

    def highlight_time(self, seconds: float) -> int:
        """Mark the segment under the playhead and scroll to it (not while a cell is being edited)."""
        row = self.row_at_time(seconds)
        self.model._set_playing_row(row)
        self.tools.follow(seconds, row)  # karaoke: the word being spoken
        if row >= 0 and self.view.state() != QAbstractItemView.State.EditingState:
            self.view.scrollTo(self.model.index(row, TEXT), QAbstractItemView.ScrollHint.EnsureVisible)
        return row

    @property
    def highlighted_row(self) -> int:
        return self.model.playing_row

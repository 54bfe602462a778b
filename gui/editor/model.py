"""The segment table's Qt model: segments as rows (start, end, speaker, text).

Changes made through setData (the view's editors) become undo commands (gui/editor/commands.py) pushed on `stack`;
the change methods below (reset_segments, set_segment, replace_rows…) change the data without validation or undo,
and are what those commands call.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont, QGuiApplication, QPalette, QUndoCommand, QUndoStack

from gui.editor.columns import END, HEADERS, SPEAKER, START, TEXT
from gui.editor.commands import EditText, EditTimes
from gui.editor.copies import SegmentKey, copy_segment, copy_segments, segment_key
from gui.editor.speaker_commands import speaker_data, speaker_set_data
from worker.transcripts.editing import format_timestamp, parse_timestamp, validate_times
from worker.transcripts.model import Segment, Speaker, Transcript


class SegmentTableModel(QAbstractTableModel):
    """See the module docstring."""

    rejected = Signal(str)  # an edit refused by validation: the reason
    speakersChanged = Signal()  # a speaker renamed, merged, added (gui.editor.speaker_commands.SpeakerEdit)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._segments: list[Segment] = []
        self._original_keys: set[SegmentKey] = set()
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
        return copy_segments(self._segments)

    def shared_transcript(self) -> Transcript:
        """The segments and speakers as a Transcript, shared, not copied: for reading, and for the worker's
        rules, which copy (worker/speakers/edits.py, worker/transcripts/editing.py)."""
        return Transcript(segments=self._segments, speakers=self.speakers)

    def segment_keys(self, first: int = 0, stop: int | None = None) -> list[SegmentKey]:
        """The keys of rows [first, stop): what an edit compares to tell whether the rows changed meanwhile."""
        return [segment_key(s) for s in self._segments[first:stop]]

    def texts(self) -> list[str]:
        return [s.text.strip() for s in self._segments]

    def is_edited(self, row: int) -> bool:
        return segment_key(self._segments[row]) not in self._original_keys

    def row_at(self, seconds: float) -> int:
        """The row playing at `seconds` (-1 in a gap or past the end)."""
        for row, segment in enumerate(self._segments):
            if segment.start <= seconds < segment.end:
                return row
        return -1

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
            return self.push(EditText(self, row, text))
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
        return self.push(EditTimes(self, row, start, end))

    def push(self, command: QUndoCommand) -> bool:
        """An edit as an undo step on `stack` (applied at once when there is no stack)."""
        if self.stack is None:
            command.redo()
        else:
            self.stack.push(command)
        return True

    # changes used by the commands and the editor (no validation, no undo)
    def reset_segments(self, segments: list[Segment], original: list[Segment]) -> None:
        self.beginResetModel()
        self._segments = copy_segments(segments)
        self._original_keys = {segment_key(s) for s in original}
        self.playing_row = -1
        self.endResetModel()

    def append_segments(self, segments: list[Segment]) -> None:
        """Rows added at the end (a running job's new segments), counted as original."""
        if not segments:
            return
        first = len(self._segments)
        self.beginInsertRows(QModelIndex(), first, first + len(segments) - 1)
        self._segments.extend(copy_segments(segments))
        self._original_keys.update(segment_key(s) for s in segments)
        self.endInsertRows()

    def row_changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, SPEAKER))

    def set_segment(self, row: int, segment: Segment) -> None:
        self._segments[row] = copy_segment(segment)
        self.row_changed(row)

    def replace_rows(self, row: int, count: int, new: list[Segment]) -> None:
        """Rows [row, row + count) become `new`."""
        if count:
            self.beginRemoveRows(QModelIndex(), row, row + count - 1)
            del self._segments[row:row + count]
            self.endRemoveRows()
        if new:
            self.beginInsertRows(QModelIndex(), row, row + len(new) - 1)
            self._segments[row:row] = copy_segments(new)
            self.endInsertRows()
        self.playing_row = -1

    def set_playing_row(self, row: int) -> None:
        if row == self.playing_row:
            return
        previous, self.playing_row = self.playing_row, row
        for changed in (previous, row):
            if 0 <= changed < len(self._segments):
                self.row_changed(changed)
                self.headerDataChanged.emit(Qt.Orientation.Vertical, changed, changed)

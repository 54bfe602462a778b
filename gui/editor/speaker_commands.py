"""The editor's Speaker column: what its cells show (name, colour, known-voice confidence), the combo box that
reassigns a segment (or the selected segments) to another speaker, and SpeakerEdit, the one undo command every
speaker change (rename, reassign, merge, save voice) is made of. The rules themselves: worker/speakers/edits.py.
The model is only named for types here: it imports this module (gui/editor/model.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette, QUndoCommand
from PySide6.QtWidgets import QComboBox, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from gui.editor.copies import copy_speaker
from worker.speakers.edits import NEW_SPEAKER, describe_speaker, reassign_segments, speaker_index
from worker.transcripts.model import Speaker, Transcript

if TYPE_CHECKING:
    from gui.editor.model import SegmentTableModel
    from gui.editor.widget import TranscriptEditor

# a fixed palette (Tableau 10), indexed by the speaker's position in transcript.speakers (wraps after ten)
SPEAKER_COLOURS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1",
                   "#76b7b2", "#edc948", "#ff9da7", "#9c755f", "#bab0ac")
TINT_ALPHA = 70  # the cell's background: the colour, light enough to read the name on
NO_SPEAKER = ""  # the combo box's value for "no speaker"


def speaker_colour(position: int) -> QColor:
    return QColor(SPEAKER_COLOURS[position % len(SPEAKER_COLOURS)])


def speaker_data(model: "SegmentTableModel", row: int, role: int) -> Any:
    """The Speaker column's cell for `row`."""
    segment = model.segment(row)
    position = speaker_index(model.shared_transcript(), segment.speaker)
    speaker = model.speakers[position] if position >= 0 else None
    if role == Qt.ItemDataRole.DisplayRole:
        return speaker.name if speaker else (segment.speaker or "")
    if role == Qt.ItemDataRole.EditRole:
        return segment.speaker or NO_SPEAKER
    if role == Qt.ItemDataRole.DecorationRole and speaker is not None:
        return speaker_colour(position)
    if role == Qt.ItemDataRole.BackgroundRole:
        if row == model.playing_row:
            colour = QColor(QGuiApplication.palette().color(QPalette.ColorRole.Highlight))
            colour.setAlpha(90)
            return colour
        if speaker is not None:
            colour = speaker_colour(position)
            colour.setAlpha(TINT_ALPHA)
            return colour
    if role == Qt.ItemDataRole.ToolTipRole:
        who = describe_speaker(speaker) if speaker else "No speaker"
        return f"{who}\nDouble-click to give this segment (or the selected ones) to another speaker."
    if role == Qt.ItemDataRole.TextAlignmentRole:
        return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
    return None


class SpeakerEdit(QUndoCommand):
    """The model's speakers and segment speakers become `after`'s (and back on undo): one undo step."""

    def __init__(self, label: str, model: "SegmentTableModel", after: Transcript) -> None:
        super().__init__(label)
        self.model = model
        self.before = ([copy_speaker(s) for s in model.speakers], [s.speaker for s in model.shared_transcript().segments])
        self.after = ([copy_speaker(s) for s in after.speakers], [s.speaker for s in after.segments])

    def redo(self) -> None:
        self.apply(*self.after)

    def undo(self) -> None:
        self.apply(*self.before)

    def apply(self, speakers: list[Speaker], assignments: list[str | None]) -> None:
        model = self.model
        rows = range(model.rowCount())
        shown_before = [speaker_data(model, row, Qt.ItemDataRole.ToolTipRole) for row in rows]
        colour_before = [speaker_data(model, row, Qt.ItemDataRole.DecorationRole) for row in rows]
        model.speakers = [copy_speaker(s) for s in speakers]
        for segment, speaker_id in zip(model.shared_transcript().segments, assignments):
            segment.speaker = speaker_id
        for row in rows:  # only the cells that changed: each repaint re-measures the row
            if (speaker_data(model, row, Qt.ItemDataRole.ToolTipRole) != shown_before[row]
                    or speaker_data(model, row, Qt.ItemDataRole.DecorationRole) != colour_before[row]):
                model.row_changed(row)
        model.speakersChanged.emit()


def speaker_set_data(model: "SegmentTableModel", row: int, value: Any) -> bool:
    """setData on the Speaker column: `value` is a speaker id, NO_SPEAKER, or NEW_SPEAKER."""
    target = None if value in (None, NO_SPEAKER) else str(value)
    if target == model.segment(row).speaker:
        return False
    try:
        after = reassign_segments(model.shared_transcript(), [row], target)
    except ValueError as exc:
        model.rejected.emit(f"Not changed: {exc}")
        return False
    return model.push(SpeakerEdit(f"Change the speaker of segment {row + 1}", model, after))


class SpeakerDelegate(QStyledItemDelegate):
    """A combo box of the transcript's speakers, "New speaker" and "No speaker". Choosing one in a row that is
    part of a selection gives every selected segment to that speaker (one undo step)."""

    def __init__(self, editor: "TranscriptEditor") -> None:
        super().__init__(editor.view)
        self.editor = editor

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QWidget:
        combo = QComboBox(parent)
        combo.setObjectName("segmentSpeakerEditor")
        for position, speaker in enumerate(self.editor.model.speakers):
            combo.addItem(speaker.name, speaker.id)
            combo.setItemData(position, speaker_colour(position), Qt.ItemDataRole.DecorationRole)
        combo.addItem("New speaker", NEW_SPEAKER)
        combo.addItem("No speaker", NO_SPEAKER)
        combo.activated.connect(lambda _index: self._chosen(combo))
        return combo

    def _chosen(self, combo: QComboBox) -> None:
        combo.setProperty("chosen", True)  # only a choice changes anything (not a focus change)
        self.commitData.emit(combo)
        self.closeEditor.emit(combo, QStyledItemDelegate.EndEditHint.NoHint)

    def setEditorData(self, editor: QWidget, index: QModelIndex | QPersistentModelIndex) -> None:
        assert isinstance(editor, QComboBox)
        editor.setCurrentIndex(max(0, editor.findData(index.data(Qt.ItemDataRole.EditRole))))

    def setModelData(self, editor: QWidget, model: QAbstractItemModel, index: QModelIndex | QPersistentModelIndex) -> None:
        assert isinstance(editor, QComboBox)
        if not editor.property("chosen") or editor.property("committed"):
            return
        editor.setProperty("committed", True)
        rows = self.editor.selected_rows()
        if index.row() in rows and len(rows) > 1:
            self.editor.speakers.reassign(rows, editor.currentData())
        else:
            model.setData(index, editor.currentData(), Qt.ItemDataRole.EditRole)

"""The editor's undo commands: every change to the segments is one of these, pushed on the editor's undo stack.

They change the model through its change methods (gui/editor/model.py), which imports this module: the model
is only named for types here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtGui import QUndoCommand

from gui.editor.copies import copy_segment, copy_segments
from gui.editor.speaker_commands import SpeakerEdit
from worker.transcripts.editing import merge_segments, split_segment, words_match_text
from worker.transcripts.model import Segment, Speaker, Transcript

if TYPE_CHECKING:
    from gui.editor.model import SegmentTableModel


class EditText(QUndoCommand):
    """Change one segment's text. Word timestamps are kept only while they still spell the text."""

    def __init__(self, model: SegmentTableModel, row: int, text: str) -> None:
        super().__init__(f"Edit text of segment {row + 1}")
        self.model, self.row = model, row
        self.before = copy_segment(model.segment(row))
        self.after = copy_segment(self.before)
        self.after.text = (" " + text) if self.before.text[:1] == " " and text else text
        if self.after.words and not words_match_text(self.after):
            self.after.words = []

    def redo(self) -> None:
        self.model.set_segment(self.row, self.after)

    def undo(self) -> None:
        self.model.set_segment(self.row, self.before)


class EditTimes(QUndoCommand):
    """Change one segment's start and end (validate first: validate_times)."""

    def __init__(self, model: SegmentTableModel, row: int, start: float, end: float) -> None:
        super().__init__(f"Change times of segment {row + 1}")
        self.model, self.row = model, row
        self.before = copy_segment(model.segment(row))
        self.after = copy_segment(self.before)
        self.after.start, self.after.end = round(start, 3), round(end, 3)

    def redo(self) -> None:
        self.model.set_segment(self.row, self.after)

    def undo(self) -> None:
        self.model.set_segment(self.row, self.before)


class ChangeSegments(QUndoCommand):
    """Several rows get new versions of their segments, as one step."""

    def __init__(self, label: str, model: SegmentTableModel, changes: dict[int, Segment]) -> None:
        super().__init__(label)
        self.model = model
        self.before = {row: copy_segment(model.segment(row)) for row in changes}
        self.after = {row: copy_segment(segment) for row, segment in changes.items()}

    def redo(self) -> None:
        for row, segment in self.after.items():
            self.model.set_segment(row, segment)

    def undo(self) -> None:
        for row, segment in self.before.items():
            self.model.set_segment(row, segment)


class ReplaceRows(QUndoCommand):
    """Rows [row, row + len(before)) become `after` (and back on undo)."""

    def __init__(self, label: str, model: SegmentTableModel, row: int, before: list[Segment], after: list[Segment]) -> None:
        super().__init__(label)
        self.model, self.row = model, row
        self.before, self.after = copy_segments(before), copy_segments(after)

    def redo(self) -> None:
        self.model.replace_rows(self.row, len(self.before), self.after)

    def undo(self) -> None:
        self.model.replace_rows(self.row, len(self.after), self.before)


class SplitSegment(ReplaceRows):
    """Split a segment before character `char_index` of its displayed (stripped) text; the time is split
    at the word there (word timestamps) or in proportion to the characters. ValueError if a side is empty."""

    def __init__(self, model: SegmentTableModel, row: int, char_index: int) -> None:
        segment = model.segment(row)
        leading = len(segment.text) - len(segment.text.lstrip())
        left, right = split_segment(segment, char_index + leading)
        super().__init__(f"Split segment {row + 1}", model, row, [segment], [left, right])


class MergeWithNext(ReplaceRows):
    def __init__(self, model: SegmentTableModel, row: int) -> None:
        if not 0 <= row < model.rowCount() - 1:
            raise ValueError("There is no next segment to merge with.")
        first, second = model.segment(row), model.segment(row + 1)
        super().__init__(f"Merge segments {row + 1} and {row + 2}", model, row, [first, second], [merge_segments(first, second)])


class InsertSegment(ReplaceRows):
    def __init__(self, model: SegmentTableModel, row: int, segment: Segment) -> None:
        super().__init__(f"Insert segment {row + 1}", model, row, [], [segment])


class DeleteSegments(QUndoCommand):
    def __init__(self, model: SegmentTableModel, rows: list[int]) -> None:
        rows = sorted(set(rows))
        super().__init__(f"Delete {len(rows)} segment{'s' if len(rows) != 1 else ''}")
        self.model = model
        self.removed = [(row, copy_segment(model.segment(row))) for row in rows]

    def redo(self) -> None:
        for row, _segment in reversed(self.removed):
            self.model.replace_rows(row, 1, [])

    def undo(self) -> None:
        for row, segment in self.removed:
            self.model.replace_rows(row, 0, [segment])


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


class RevertToOriginal(ReplaceRows):
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

"""The transcript editor widget: segments in a table, edited in place, every change an undoable command.

TranscriptEditor(parent=None, save=None, library=None, jobs=None)
    set_transcript(transcript, original=None, job_id=None, read_only=None); transcript() -> Transcript
    highlight_time(seconds): marks (and scrolls to) the segment under the playhead
    signals: transcriptEdited(Transcript) after every committed change (edit, undo, redo, revert),
             segmentActivated(float start_s) when a segment is clicked, statusMessage(str)

Edits are saved as they happen: `save(transcript)` is called after each change and, with a job id, the edit is
written through the job service `jobs` (worker.jobs.queue.JobQueue.save_edit: the window's queue, or one over
`library` for an editor used alone), off the GUI thread and in order (gui/edit_saver.py); flush_saves() waits
for those writes. A region is re-transcribed through `jobs` too (on its backends, with its preferences).
The data operations (split, merge, find, replace, time parsing) live in worker/transcripts/editing.py.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QStyledItemDelegate,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from gui.edit_saver import EditSaver, job_service
from gui.editor.columns import END, START, TEXT
from gui.editor.commands import DeleteSegments, EditTimes, InsertSegment, MergeWithNext, RevertToOriginal, SplitSegment
from gui.editor.copies import copy_segments, segment_key, transcript_metadata
from gui.editor.delegates import TEXT_EDITOR_NAME, TextDelegate, TimeDelegate
from gui.editor.find_bar import FindBar
from gui.editor.model import SegmentTableModel
from gui.editor.speakers_panel import SpeakersPanel
from gui.editor.tools import EditorTools
from gui.icons import icon
from worker.speakers.edits import without_embeddings
from worker.transcripts.editing import parse_timestamp, validate_times
from worker.transcripts.model import Segment, Speaker, Transcript

if TYPE_CHECKING:
    from worker.jobs.queue import JobQueue
    from worker.library.library import Library


class TranscriptEditor(QWidget):
    """See the module docstring. `save(transcript)` is called after each committed change."""

    transcriptEdited = Signal(object)  # Transcript
    segmentActivated = Signal(float)  # start seconds of the clicked segment
    statusMessage = Signal(str)

    def __init__(self, parent: QWidget | None = None, save: Callable[[Transcript], None] | None = None,
                 library: Library | None = None, jobs: JobQueue | None = None) -> None:
        super().__init__(parent)
        self._save = save
        self.library = library
        self._jobs = jobs
        self._library_jobs: JobQueue | None = None  # job_service(library) while no `jobs` was given
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
        self.text_delegate: TextDelegate = TextDelegate(self.view)
        self.set_text_delegate(self.text_delegate)
        self.time_delegate = TimeDelegate(self.view)
        self.view.setItemDelegateForColumn(START, self.time_delegate)
        self.view.setItemDelegateForColumn(END, self.time_delegate)
        self.view.clicked.connect(self._activated)
        self.view.activated.connect(self._activated)

        self.find_bar = FindBar(self)
        self.speakers = SpeakersPanel(self)  # the Speaker column's editor, rename/merge, known voices
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

        self.tools = EditorTools(self)  # shift, re-transcribe, fit to rules, karaoke, uncertain words

    @property
    def jobs(self) -> JobQueue | None:
        """The job service edits, voices and regions go through: the one given, else one over `library`."""
        if self._jobs is not None or self.library is None:
            return self._jobs
        if self._library_jobs is None or self._library_jobs.library is not self.library:
            self._library_jobs = job_service(self.library, self)
        return self._library_jobs

    def set_text_delegate(self, delegate: TextDelegate) -> None:
        """The text column's delegate (the tools put one that paints marked words); Ctrl+Enter in it splits."""
        self.text_delegate = delegate
        self.view.setItemDelegateForColumn(TEXT, delegate)
        delegate.splitRequested.connect(self.split_from_editor)

    # --- actions --------------------------------------------------------------------------------------------

    def _action(self, text: str, icon_name: str | None, slot: Callable[[], object],
                shortcuts: list[QKeySequence.StandardKey | str], tip: str, on: QWidget | None = None) -> QAction:
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
            self._transcript = transcript_metadata(transcript)
            self.model.append_segments(transcript.segments[self.model.rowCount():])  # live: keep the scroll position
            self.view.scrollToBottom()
            self._update_actions()
            return
        self._loading = True
        try:
            self.job_id = job_id
            self._transcript = transcript_metadata(transcript) if transcript is not None else None
            self._original = copy_segments((original or transcript).segments) if transcript is not None else []
            self._original_speakers = list((original or transcript).speakers) if transcript is not None else []
            self.model.speakers = list(transcript.speakers) if transcript is not None else []
            self.model.read_only = read_only
            self.model.reset_segments(transcript.segments if transcript is not None else [], self._original)
            self.undo_stack.clear()
            self.undo_stack.setClean()
        finally:
            self._loading = False
        self.status_label.setText("Transcribing… (editable when done)" if read_only and transcript is not None else "")
        self.find_bar.refresh()
        self._update_actions()

    def _is_extension(self, transcript: Transcript) -> bool:
        current = self.model.segment_keys()
        return len(transcript.segments) >= len(current) and current == [
            segment_key(s) for s in transcript.segments[:len(current)]]

    def metadata(self) -> Transcript | None:
        """The shown transcript's language, model, source… without its segments (not a copy); None when nothing is shown."""
        return self._transcript

    def transcript(self) -> Transcript | None:
        """The transcript as edited (a copy; segment ids renumbered), or None when nothing is shown."""
        if self._transcript is None:
            return None
        result = transcript_metadata(self._transcript)
        result.segments = self.model.segments()
        result.speakers = [replace(s) for s in self.model.speakers]
        return result.renumbered()

    def original(self) -> Transcript | None:
        if self._transcript is None:
            return None
        result = transcript_metadata(self._transcript)
        result.segments = copy_segments(self._original)
        result.speakers = [replace(s) for s in self._original_speakers]
        return result.renumbered()

    def is_edited(self) -> bool:
        """True when the segments (or the speakers' names) differ from the original."""
        return (self.model.segment_keys() != [segment_key(s) for s in self._original]
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
        if self.jobs is not None and self.job_id is not None and not self.model.read_only:
            self.saver.save(self.jobs, self.job_id, transcript, self.is_edited())  # off the GUI thread

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
            self.split_from_editor(row, editor.textCursor().position())
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
        if isinstance(focus, QPlainTextEdit) and focus.objectName() == TEXT_EDITOR_NAME and self.isAncestorOf(focus):
            return focus
        return None

    def split_from_editor(self, row: int, position: int) -> None:
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
        count = self.model.rowCount()
        if row < 0:
            row = count - 1
        start = self.model.segment(row).end if row >= 0 else 0.0
        following = self.model.segment(row + 1).start if row + 1 < count else None
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
        return self.model.row_at(seconds)

    def highlight_time(self, seconds: float) -> int:
        """Mark the segment under the playhead and scroll to it (not while a cell is being edited)."""
        row = self.row_at_time(seconds)
        self.model.set_playing_row(row)
        self.tools.follow(seconds, row)  # karaoke: the word being spoken
        if row >= 0 and self.view.state() != QAbstractItemView.State.EditingState:
            self.view.scrollTo(self.model.index(row, TEXT), QAbstractItemView.ScrollHint.EnsureVisible)
        return row

    @property
    def highlighted_row(self) -> int:
        return self.model.playing_row

"""The editor's find (Ctrl+F) and replace (Ctrl+H) bar: match count, match case, whole words; a replacement is one
undo step (replace all too). The matching itself: worker/transcripts/editing.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QLineEdit, QToolButton, QVBoxLayout, QWidget

from gui.editor.commands import EditText, ReplaceTexts
from worker.transcripts.editing import Match, find_matches, replace_all

if TYPE_CHECKING:
    from gui.editor.widget import TranscriptEditor


class FindBar(QWidget):
    """Find (Ctrl+F) and replace (Ctrl+H) in the segment texts, with match count and options."""

    def __init__(self, editor: TranscriptEditor) -> None:
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

    def _button(self, text: str, slot: Callable[[], object], tip: str) -> QToolButton:
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

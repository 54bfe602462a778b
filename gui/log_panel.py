"""The GPU/CPU timing log: a line per chunk as it returns and a summary per job; copy and save."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from gui.icons import icon

MAX_BLOCKS = 20000  # keeps a long session's log bounded in memory (the library keeps everything)


class LogPanel(QWidget):
    saved = Signal(str)  # the path written

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = QPlainTextEdit()
        self.view.setObjectName("timingLog")
        self.view.setReadOnly(True)
        self.view.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)  # every field of a timing line in view
        self.view.setMaximumBlockCount(MAX_BLOCKS)
        self.view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.view.setPlaceholderText("GPU and CPU timings appear here as chunks return.")

        self.copy_button = QPushButton(icon("copy"), "Copy")
        self.copy_button.setToolTip("Copy the whole log to the clipboard")
        self.copy_button.clicked.connect(self.copy_to_clipboard)
        self.save_button = QPushButton(icon("save"), "Save…")
        self.save_button.setToolTip("Save the log to a text file")
        self.save_button.clicked.connect(self._ask_and_save)
        title = QLabel("Timing log")
        title.setBuddy(self.view)

        buttons = QHBoxLayout()
        buttons.addWidget(title)
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.view, 1)

    def append_line(self, line: str) -> None:
        self.view.appendPlainText(line)

    def append_lines(self, lines: list[str]) -> None:
        if lines:
            self.view.appendPlainText("\n".join(lines))

    def lines(self) -> list[str]:
        text = self.view.toPlainText()
        return text.splitlines() if text else []

    def text(self) -> str:
        return self.view.toPlainText()

    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.text())

    def save_to(self, path: str | Path) -> Path:
        """Write the log atomically (a temp file renamed into place)."""
        target = Path(path)
        temp = target.with_name(f".{target.name}.part")
        temp.write_text(self.text() + "\n", encoding="utf-8")
        temp.replace(target)
        self.saved.emit(str(target))
        return target

    def _ask_and_save(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self, "Save timing log", "whisper-desk-timings.txt", "Text files (*.txt)")
        if path:
            self.save_to(path)

"""The Preferences' watch folders: a table of folders, each with where it runs, its model, its output formats, its
output folder and what becomes of the files already there (worker.jobs.watch_folders.WatchFolder), with Add…
and Remove. Adding a folder that already holds media files asks whether to transcribe them, saying how many
there are and, on Modal, what they would cost (counted in the background: worker.jobs.watch.survey_folder)."""

from __future__ import annotations

import time

from PySide6 import QtWidgets
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from gui.background import Call
from worker.backends.base import BACKEND_LABELS
from worker.core.errors import exception_line
from worker.core.options import MODEL_NAMES
from worker.jobs.preferences import Preferences
from worker.jobs.watch import FolderSurvey, survey_folder
from worker.jobs.watch_folders import DEFAULT_FORMATS, WATCH_BACKENDS, ExistingFiles, WatchFolder, parse_watch_folders

FOLDER, BACKEND, MODEL, FORMATS, OUTPUT, EXISTING = range(6)
HEADERS = ("Folder", "Run on", "Model", "Formats", "Output folder", "Files already there")
EXISTING_LABELS = {ExistingFiles.TRANSCRIBE: "Transcribe", ExistingFiles.SKIP: "Skip"}
ADDED_ROLE = Qt.ItemDataRole.UserRole  # on the folder's cell: WatchFolder.added


class WatchFoldersEditor(QWidget):
    """Edits a list of WatchFolder; `folders()` gives the result (rows without a folder are dropped, unknown
    formats left out)."""

    def __init__(self, folders: tuple[WatchFolder, ...], default_backend: str, default_model: str,
                 parent: QWidget | None = None, preferences: Preferences | None = None) -> None:
        super().__init__(parent)
        self.default_backend = default_backend if default_backend in WATCH_BACKENDS else WATCH_BACKENDS[0]
        self.default_model = default_model
        self.preferences = preferences or Preferences()  # Modal's price, chunks and containers for the estimate
        self.question: QMessageBox | None = None  # the latest "transcribe the files already there?" question
        self.table = QtWidgets.QTableWidget(0, len(HEADERS))
        self.table.setObjectName("watchFolders")
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(FOLDER, QtWidgets.QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(OUTPUT, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.table.setMinimumHeight(self.table.verticalHeader().defaultSectionSize() * 4)
        self.table.setToolTip("Each new audio or video file in these folders is transcribed once, after it has "
                              "finished copying. Formats: txt, srt, vtt, json, tsv, docx, ass (comma-separated). "
                              "No output folder: next to each file. Files already there: whether the files a "
                              "folder holds when it is added are transcribed too (decided when it is added).")
        for entry in folders:
            self.add_row(entry)

        add = QtWidgets.QPushButton("Add…")
        add.setObjectName("addWatchFolder")
        add.clicked.connect(self._choose_folder)
        remove = QtWidgets.QPushButton("Remove")
        remove.clicked.connect(self._remove_selected)
        self.status = QtWidgets.QLabel()  # while a new folder is looked through, or why it could not be
        self.status.setObjectName("watchFolderStatus")
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addWidget(self.status, 1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)

    def add_row(self, entry: WatchFolder) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        folder = QtWidgets.QTableWidgetItem(entry.folder)
        folder.setData(ADDED_ROLE, entry.added)
        self.table.setItem(row, FOLDER, folder)
        backend = QtWidgets.QComboBox()
        for name in WATCH_BACKENDS:
            backend.addItem(BACKEND_LABELS.get(name, name), name)
        backend.setCurrentIndex(max(0, backend.findData(entry.backend)))
        self.table.setCellWidget(row, BACKEND, backend)
        model = QtWidgets.QComboBox()
        model.addItems(list(MODEL_NAMES))
        model.setCurrentText(entry.model)
        self.table.setCellWidget(row, MODEL, model)
        self.table.setItem(row, FORMATS, QtWidgets.QTableWidgetItem(", ".join(entry.formats)))
        self.table.setItem(row, OUTPUT, QtWidgets.QTableWidgetItem(entry.output_dir))
        existing = QtWidgets.QComboBox()
        for choice, label in EXISTING_LABELS.items():
            existing.addItem(label, choice.value)
        existing.setCurrentIndex(max(0, existing.findData(ExistingFiles(entry.existing).value)))
        existing.setToolTip("Whether the files the folder held when it was added are transcribed too")
        self.table.setCellWidget(row, EXISTING, existing)

    def _choose_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder to watch")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> Call:
        """A folder the user chose: its media files are counted in the background (and, on Modal, their cost
        estimated); if it holds any, `question` asks whether to transcribe them, and the row is added with the
        answer. Returns the background call."""
        self.status.setText(f"Looking for audio and video files in {folder}…")
        backend, model, preferences = self.default_backend, self.default_model, self.preferences
        call = Call(lambda: survey_folder(folder, backend, model, preferences))
        call.returned.connect(self._surveyed)
        call.raised.connect(self._survey_failed)
        call.start()
        return call

    def _surveyed(self, survey: FolderSurvey) -> None:
        self.status.setText("")
        folder = str(survey.folder)
        if not survey.files:
            self._add_new(folder, ExistingFiles.TRANSCRIBE)
            return
        question = QMessageBox(QMessageBox.Icon.Question, "Files already in the folder",
                               f"{folder} already holds {survey.line()}.\n\nTranscribe them as well, or only "
                               "the files that arrive from now on?", parent=self)
        question.setObjectName("existingFilesQuestion")
        transcribe = question.addButton(f"Transcribe {survey.files} file{'' if survey.files == 1 else 's'}",
                                        QMessageBox.ButtonRole.AcceptRole)
        skip = question.addButton("Only new files", QMessageBox.ButtonRole.ActionRole)
        question.addButton(QMessageBox.StandardButton.Cancel)  # the folder is not added
        question.setDefaultButton(skip)

        def answered(_result: int) -> None:
            chosen = question.clickedButton()
            if chosen is transcribe:
                self._add_new(folder, ExistingFiles.TRANSCRIBE)
            elif chosen is skip:
                self._add_new(folder, ExistingFiles.SKIP)

        question.finished.connect(answered)
        self.question = question
        question.open()

    def _survey_failed(self, error: BaseException) -> None:
        self.status.setText(f"The folder could not be read: {exception_line(error)}")

    def _add_new(self, folder: str, existing: ExistingFiles) -> None:
        self.add_row(WatchFolder(folder, self.default_backend, self.default_model, DEFAULT_FORMATS,
                                 existing=existing, added=time.time()))

    def _remove_selected(self) -> None:
        for row in sorted({index.row() for index in self.table.selectedIndexes()}, reverse=True):
            self.table.removeRow(row)

    def _text(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text().strip() if item is not None else ""

    def folders(self) -> tuple[WatchFolder, ...]:
        from worker.transcripts.formats import FORMAT_LABELS  # imported when the dialog is read, not at start

        entries = []
        for row in range(self.table.rowCount()):
            typed = [f.strip().lower().lstrip(".") for f in self._text(row, FORMATS).replace(";", ",").split(",")]
            backend = self.table.cellWidget(row, BACKEND)
            model = self.table.cellWidget(row, MODEL)
            existing = self.table.cellWidget(row, EXISTING)
            assert isinstance(backend, QtWidgets.QComboBox) and isinstance(model, QtWidgets.QComboBox)  # set in _add_row
            assert isinstance(existing, QtWidgets.QComboBox)
            folder = self.table.item(row, FOLDER)
            entries.append({
                "folder": self._text(row, FOLDER), "backend": backend.currentData(), "model": model.currentText(),
                "formats": [f for f in typed if f in FORMAT_LABELS], "output_dir": self._text(row, OUTPUT),
                "existing": existing.currentData(), "added": folder.data(ADDED_ROLE) if folder is not None else 0.0,
            })
        return parse_watch_folders(entries)

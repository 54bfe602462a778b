"""The Preferences' watch folders: a table of folders, each with where it runs, its model, its output formats and
its output folder (worker.jobs.watch_folders.WatchFolder), with Add… and Remove."""

from __future__ import annotations

from PySide6 import QtWidgets
from PySide6.QtWidgets import QWidget

from worker.backends.base import BACKEND_LABELS
from worker.core.options import MODEL_NAMES
from worker.jobs.watch_folders import DEFAULT_FORMATS, WATCH_BACKENDS, WatchFolder, parse_watch_folders

FOLDER, BACKEND, MODEL, FORMATS, OUTPUT = range(5)
HEADERS = ("Folder", "Run on", "Model", "Formats", "Output folder")


class WatchFoldersEditor(QWidget):
    """Edits a list of WatchFolder; `folders()` gives the result (rows without a folder are dropped, unknown
    formats left out)."""

    def __init__(self, folders: tuple[WatchFolder, ...], default_backend: str, default_model: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.default_backend = default_backend if default_backend in WATCH_BACKENDS else WATCH_BACKENDS[0]
        self.default_model = default_model
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
                              "No output folder: next to each file.")
        for entry in folders:
            self.add_row(entry)

        add = QtWidgets.QPushButton("Add…")
        add.setObjectName("addWatchFolder")
        add.clicked.connect(self._choose_folder)
        remove = QtWidgets.QPushButton("Remove")
        remove.clicked.connect(self._remove_selected)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(remove)
        buttons.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        layout.addLayout(buttons)

    def add_row(self, entry: WatchFolder) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        self.table.setItem(row, FOLDER, QtWidgets.QTableWidgetItem(entry.folder))
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

    def _choose_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Folder to watch")
        if folder:
            self.add_row(WatchFolder(folder, self.default_backend, self.default_model, DEFAULT_FORMATS))

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
            assert isinstance(backend, QtWidgets.QComboBox) and isinstance(model, QtWidgets.QComboBox)  # set in _add_row
            entries.append({
                "folder": self._text(row, FOLDER), "backend": backend.currentData(), "model": model.currentText(),
                "formats": [f for f in typed if f in FORMAT_LABELS], "output_dir": self._text(row, OUTPUT),
            })
        return parse_watch_folders(entries)

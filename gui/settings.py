"""The preferences dialog (the preferences themselves: worker.jobs.preferences, shared with the command line), and
QSettings for the window's own state (geometry, UI choices), stored by platform convention."""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import TypeVar

from PySide6 import QtWidgets
from PySide6.QtCore import QSettings
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import QDialog, QWidget

from worker.backends.base import BACKEND_LABELS
from worker.core.options import MODEL_NAMES
from worker.jobs.preferences import Preferences, preferences_path

ORGANIZATION = "whisper-desk"
APPLICATION = "whisper-desk"


def openai_whisper_installed() -> bool:
    """Whether the optional openai-whisper engine can load (found, not imported: that would take seconds)."""
    return all(importlib.util.find_spec(name) is not None for name in ("whisper", "torch"))


def settings_store() -> QSettings:
    """The app's QSettings. On Linux the path follows XDG_CONFIG_HOME as it is now (Qt caches it otherwise)."""
    if sys.platform.startswith("linux"):
        config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
            QSettings.setPath(fmt, QSettings.Scope.UserScope, config_home)
    return QSettings(ORGANIZATION, APPLICATION)


Number = TypeVar("Number", int, float)


def stored_number(store: QSettings, key: str, default: Number) -> Number:
    """A number kept in `store`, as the type of `default` (an INI file gives it back as text)."""
    value = store.value(key, default)
    return type(default)(value if isinstance(value, (int, float, str)) else default)


def load_preferences() -> Preferences:
    """The shared preferences (worker.jobs.preferences). On the first start after an update, the ones older versions
    kept in QSettings are carried over once, into the shared file."""
    if preferences_path().exists():
        return Preferences.load()
    store = settings_store()
    legacy = {f.name: store.value(f.name) for f in fields(Preferences) if store.contains(f.name)}
    if not legacy:
        return Preferences()
    preferences = Preferences.from_dict(legacy)
    try:
        preferences.save()
    except OSError:
        pass  # a read-only config folder: they still apply to this session
    return preferences


class SettingsDialog(QDialog):
    """Edits a Preferences; `preferences()` gives the result after exec()."""

    def __init__(self, preferences: Preferences, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self._initial = preferences

        self.backend = QtWidgets.QComboBox()
        for name, label in BACKEND_LABELS.items():
            self.backend.addItem(label, name)
        self.backend.setCurrentIndex(max(0, self.backend.findData(preferences.backend)))
        self.engine = QtWidgets.QComboBox()
        self.engine.addItem("faster-whisper", "faster")
        self.engine.addItem("openai-whisper", "openai")
        if not openai_whisper_installed():  # an optional extra: shown, but not selectable, without it
            engines = self.engine.model()
            assert isinstance(engines, QStandardItemModel)  # a combo box's own model
            item = engines.item(1)
            item.setEnabled(False)
            item.setText("openai-whisper (not installed)")
            item.setToolTip("pip install 'whisper-desk[openai]', then pip install --no-deps openai-whisper==20250625")
        self.engine.setCurrentIndex(max(0, self.engine.findData(preferences.local_engine)))
        self.model = QtWidgets.QComboBox()
        self.model.addItems(list(MODEL_NAMES))
        self.model.setCurrentText(preferences.model)
        self.language = QtWidgets.QLineEdit(preferences.language)
        self.language.setPlaceholderText("detect (or a code such as en, de, fr)")
        self.task = QtWidgets.QComboBox()
        self.task.addItem("Transcribe", "transcribe")
        self.task.addItem("Translate to English", "translate")
        self.task.setCurrentIndex(max(0, self.task.findData(preferences.task)))
        self.word_timestamps = QtWidgets.QCheckBox("Word timestamps")
        self.word_timestamps.setChecked(preferences.word_timestamps)
        from gui.speaker_choices import SPEAKER_CHOICES  # imported when the dialog opens, not at start

        self.speakers = QtWidgets.QComboBox()
        self.speakers.setObjectName("speakersDefault")
        for label, value in SPEAKER_CHOICES:
            self.speakers.addItem(label, value or "")
        self.speakers.setCurrentIndex(max(0, self.speakers.findData(preferences.speakers_default)))
        self.speakers.setToolTip("Label who speaks in new jobs (Queue > Speakers changes it per job)")

        self.local_parallel = _spin(1, 8, preferences.local_parallel)
        self.modal_parallel = _spin(1, 16, preferences.modal_parallel)
        self.max_containers = _spin(1, 64, preferences.max_containers)
        self.chunk_s = QtWidgets.QDoubleSpinBox()
        self.chunk_s.setRange(5.0, 600.0)
        self.chunk_s.setSuffix(" s")
        self.chunk_s.setValue(preferences.chunk_s)
        self.cost = QtWidgets.QDoubleSpinBox()
        self.cost.setRange(0.0, 100.0)
        self.cost.setDecimals(3)
        self.cost.setPrefix("$")
        self.cost.setSuffix(" per GPU-hour")
        self.cost.setValue(preferences.dollars_per_gpu_hour)
        self.modal_plan = QtWidgets.QComboBox()
        self.modal_plan.setObjectName("modalPlan")
        for value, label in (("fastest", "Fastest (a container per chunk)"), ("cheapest", "Cheapest (fewer containers)")):
            self.modal_plan.addItem(label, value)
        self.modal_plan.setCurrentIndex(max(0, self.modal_plan.findData(preferences.modal_plan)))
        self.modal_plan.setToolTip("How each Modal file fans out; a queued job's tooltip shows both plans' cost")
        self.check_modal = QtWidgets.QCheckBox("Check the Modal connection at start")
        self.check_modal.setChecked(preferences.check_modal_on_start)

        self.export_checks: dict[str, QtWidgets.QCheckBox] = {}
        formats_row = QtWidgets.QHBoxLayout()
        from worker.transcripts.formats import EXPORT_FORMATS  # imported when the dialog opens, not at start

        for fmt in EXPORT_FORMATS:
            box = QtWidgets.QCheckBox(fmt.upper())
            box.setChecked(fmt in preferences.auto_export_formats)
            self.export_checks[fmt] = box
            formats_row.addWidget(box)
        formats_row.addStretch(1)
        self.export_folder = QtWidgets.QLineEdit(preferences.auto_export_folder)
        self.export_folder.setPlaceholderText("next to the source file")
        browse = QtWidgets.QPushButton("Choose…")
        browse.clicked.connect(self._choose_folder)
        folder_row = QtWidgets.QHBoxLayout()
        folder_row.addWidget(self.export_folder, 1)
        folder_row.addWidget(browse)

        # subtitle rules (worker.transcripts.subtitles) and the editor's uncertain words
        self.subtitle_chars = _spin(1, 200, preferences.subtitle_max_line_chars)
        self.subtitle_chars.setSuffix(" characters per line")
        self.subtitle_lines = _spin(1, 6, preferences.subtitle_max_lines)
        self.subtitle_lines.setSuffix(" lines per cue")
        self.subtitle_cps = QtWidgets.QDoubleSpinBox()
        self.subtitle_cps.setRange(1.0, 60.0)
        self.subtitle_cps.setDecimals(1)
        self.subtitle_cps.setSuffix(" characters per second")
        self.subtitle_cps.setValue(preferences.subtitle_max_cps)
        self.subtitle_duration = _spin(0, 10_000, preferences.subtitle_min_duration_ms)
        self.subtitle_duration.setSuffix(" ms at least")
        self.subtitle_gap = _spin(0, 2_000, preferences.subtitle_min_gap_ms)
        self.subtitle_gap.setSuffix(" ms between cues")
        self.mark_uncertain = QtWidgets.QCheckBox("Mark uncertain words in the editor")
        self.mark_uncertain.setChecked(preferences.mark_low_confidence)
        self.uncertain_threshold = QtWidgets.QDoubleSpinBox()
        self.uncertain_threshold.setRange(0.0, 1.0)
        self.uncertain_threshold.setSingleStep(0.05)
        self.uncertain_threshold.setDecimals(2)
        self.uncertain_threshold.setValue(preferences.low_confidence_threshold)
        self.uncertain_threshold.setToolTip("Words the model gave a lower probability than this are marked")

        transcription = QtWidgets.QGroupBox("Transcription")
        form = QtWidgets.QFormLayout(transcription)
        form.addRow("Run on", self.backend)
        form.addRow("Engine on this computer", self.engine)
        form.addRow("Model", self.model)
        form.addRow("Language", self.language)
        form.addRow("Task", self.task)
        form.addRow("", self.word_timestamps)
        form.addRow("Speakers", self.speakers)

        queue = QtWidgets.QGroupBox("Queue and Modal")
        form = QtWidgets.QFormLayout(queue)
        form.addRow("Files at once on this computer", self.local_parallel)
        form.addRow("Files at once on Modal", self.modal_parallel)
        form.addRow("GPU containers per file", self.max_containers)
        form.addRow("Chunk length", self.chunk_s)
        form.addRow("Modal plan", self.modal_plan)
        form.addRow("Cost estimate", self.cost)
        form.addRow("", self.check_modal)

        export = QtWidgets.QGroupBox("Export on completion")
        form = QtWidgets.QFormLayout(export)
        form.addRow("Formats", formats_row)
        form.addRow("Folder", folder_row)

        subtitles = QtWidgets.QGroupBox("Subtitles and editor")
        form = QtWidgets.QFormLayout(subtitles)
        form.addRow("Line length", self.subtitle_chars)
        form.addRow("Lines", self.subtitle_lines)
        form.addRow("Reading speed", self.subtitle_cps)
        form.addRow("Cue duration", self.subtitle_duration)
        form.addRow("Gap", self.subtitle_gap)
        form.addRow("", self.mark_uncertain)
        form.addRow("Uncertain below", self.uncertain_threshold)

        from gui.watch_folders import WatchFoldersEditor

        self.watch_folders = WatchFoldersEditor(preferences.watch_folders, preferences.backend, preferences.model,
                                                preferences=preferences)
        watch = QtWidgets.QGroupBox("Watch folders")
        QtWidgets.QVBoxLayout(watch).addWidget(self.watch_folders)

        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        for group in (transcription, queue, export, subtitles, watch):
            layout.addWidget(group)
        layout.addWidget(buttons)

    def _choose_folder(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Export folder", self.export_folder.text())
        if folder:
            self.export_folder.setText(folder)

    def preferences(self) -> Preferences:
        return replace(
            self._initial,
            backend=self.backend.currentData(),
            local_engine=self.engine.currentData(),
            model=self.model.currentText(),
            language=self.language.text().strip(),
            task=self.task.currentData(),
            word_timestamps=self.word_timestamps.isChecked(),
            speakers_default=self.speakers.currentData() or "",
            local_parallel=self.local_parallel.value(),
            modal_parallel=self.modal_parallel.value(),
            max_containers=self.max_containers.value(),
            chunk_s=self.chunk_s.value(),
            dollars_per_gpu_hour=self.cost.value(),
            modal_plan=self.modal_plan.currentData() or "fastest",
            auto_export_formats=tuple(f for f, box in self.export_checks.items() if box.isChecked()),
            auto_export_folder=self.export_folder.text().strip(),
            check_modal_on_start=self.check_modal.isChecked(),
            subtitle_max_line_chars=self.subtitle_chars.value(),
            subtitle_max_lines=self.subtitle_lines.value(),
            subtitle_max_cps=self.subtitle_cps.value(),
            subtitle_min_duration_ms=self.subtitle_duration.value(),
            subtitle_min_gap_ms=self.subtitle_gap.value(),
            mark_low_confidence=self.mark_uncertain.isChecked(),
            low_confidence_threshold=self.uncertain_threshold.value(),
            watch_folders=self.watch_folders.folders(),
        )


def _spin(low: int, high: int, value: int) -> QtWidgets.QSpinBox:
    spin = QtWidgets.QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    return spin

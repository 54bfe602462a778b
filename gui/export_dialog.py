"""Export one or many transcripts in one step, and import subtitles (with their audio) for review.

ExportDialog(items, job_ids=None, parent=None, *, folder=None, formats=None, ask_overwrite=None)
    items: a list of (Transcript, source path), or a Library together with job_ids (their current,
    edited transcripts). Writes every chosen format for every transcript into one folder, asks before
    overwriting (Overwrite / Keep both / Cancel), and lists the files written.
import_for_review(parent, library=None, subtitle_path=None, audio_path=None, notify=None)
    asks for an .srt/.vtt and its audio (unless given) and returns (Transcript, audio path), or with a
    library adds a finished job holding the subtitles and returns its id; None (after telling why) otherwise.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

from PySide6.QtCore import QSettings, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from worker.errors import MediaError, WhisperDeskError
from worker.formats import (
    EXPORT_FORMATS,
    FORMAT_LABELS,
    IMPORT_SUFFIXES,
    export_paths,
    export_transcript,
    import_subtitles,
    unique_path,
)
from worker.transcript import Transcript

OVERWRITE, KEEP_BOTH, CANCEL = "overwrite", "keep both", "cancel"
DEFAULT_FORMATS = ("srt", "txt")
AskOverwrite = Callable[[list[Path]], str]  # existing files -> OVERWRITE | KEEP_BOTH | CANCEL


def _settings() -> QSettings:
    """The app's settings store (gui.settings: follows XDG_CONFIG_HOME on Linux)."""
    from gui.settings import settings_store

    return settings_store()


def ask_overwrite_dialog(parent: QWidget | None, existing: list[Path]) -> str:
    """Asks whether to overwrite `existing` files: OVERWRITE, KEEP_BOTH (numbered names) or CANCEL."""
    names = "\n".join(p.name for p in existing[:8]) + (f"\n… and {len(existing) - 8} more" if len(existing) > 8 else "")
    box = QMessageBox(QMessageBox.Icon.Question, "Files already exist",
                      f"{len(existing)} file{'s' if len(existing) != 1 else ''} already exist{'s' if len(existing) == 1 else ''} "
                      f"in {existing[0].parent}:\n\n{names}", parent=parent)
    overwrite = box.addButton("Overwrite", QMessageBox.ButtonRole.DestructiveRole)
    keep = box.addButton("Keep both", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(keep)
    box.exec()
    clicked = box.clickedButton()
    return OVERWRITE if clicked is overwrite else KEEP_BOTH if clicked is keep else CANCEL


class ExportDialog(QDialog):
    exported = Signal(list)  # the paths written

    def __init__(self, items: Sequence[tuple[Transcript, str | Path | None]] | Any, job_ids: Sequence[int] | None = None,
                 parent: QWidget | None = None, *, folder: str | Path | None = None, formats: Sequence[str] | None = None,
                 ask_overwrite: AskOverwrite | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export transcripts")
        self.setObjectName("exportDialog")
        self.items: list[tuple[Transcript, str | Path | None]] = self._load_items(items, job_ids)
        self.ask_overwrite: AskOverwrite = ask_overwrite or (lambda existing: ask_overwrite_dialog(self, existing))
        self.written: list[Path] = []
        self.failures: list[str] = []
        settings = _settings()

        count = len(self.items)
        names = ", ".join(Path(s).name if s else "untitled" for _t, s in self.items[:3]) + ("…" if count > 3 else "")
        heading = QLabel(f"Export {count} transcript{'s' if count != 1 else ''}: {names}" if count else "Nothing to export.")
        heading.setWordWrap(True)

        chosen = formats if formats is not None else _stored_list(settings.value("export/formats"), DEFAULT_FORMATS)
        self.format_checks: dict[str, QCheckBox] = {}
        format_box = QGroupBox("Formats")
        grid = QGridLayout(format_box)
        for i, fmt in enumerate(EXPORT_FORMATS):
            check = QCheckBox(FORMAT_LABELS[fmt])
            check.setObjectName(f"format_{fmt}")
            check.setChecked(fmt in chosen)
            check.toggled.connect(self._update)
            self.format_checks[fmt] = check
            grid.addWidget(check, i // 2, i % 2)

        options = QGroupBox("Options")
        form = QFormLayout(options)
        self.max_line_length = QSpinBox()
        self.max_line_length.setObjectName("maxLineLength")
        self.max_line_length.setRange(0, 200)
        self.max_line_length.setSpecialValueText("no limit")
        self.max_line_length.setSuffix(" characters")
        self.max_line_length.setValue(int(settings.value("export/max_line_length", 42)))
        self.max_line_length.setToolTip("Subtitles (SRT, VTT): longer segments are re-wrapped and split into several cues")
        self.max_lines = QSpinBox()
        self.max_lines.setObjectName("maxLines")
        self.max_lines.setRange(1, 6)
        self.max_lines.setValue(int(settings.value("export/max_lines", 2)))
        self.timestamps = QCheckBox("Start each line with its time range (TXT, DOCX)")
        self.timestamps.setObjectName("timestamps")
        self.timestamps.setChecked(str(settings.value("export/timestamps", "false")).lower() == "true")
        form.addRow("Max line length", self.max_line_length)
        form.addRow("Lines per cue", self.max_lines)
        form.addRow(self.timestamps)

        self.folder_edit = QLineEdit(str(folder) if folder else self._default_folder(settings))
        self.folder_edit.setObjectName("exportFolder")
        self.folder_edit.textChanged.connect(self._update)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._browse)
        folder_row = QHBoxLayout()
        folder_row.addWidget(QLabel("Folder"))
        folder_row.addWidget(self.folder_edit, 1)
        folder_row.addWidget(browse)

        self.summary = QPlainTextEdit()
        self.summary.setObjectName("exportSummary")
        self.summary.setReadOnly(True)
        self.summary.setPlaceholderText("The files written are listed here.")
        self.summary.setMaximumBlockCount(2000)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.ApplyRole)
        self.export_button.setObjectName("exportButton")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.export)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(format_box)
        layout.addWidget(options)
        layout.addLayout(folder_row)
        layout.addWidget(self.summary, 1)
        layout.addWidget(self.buttons)
        self.resize(620, 520)
        self._update()

    @staticmethod
    def _load_items(items: Any, job_ids: Sequence[int] | None) -> list[tuple[Transcript, str | Path | None]]:
        if job_ids is None:
            return list(items)
        library = items  # a worker.library.Library: each job's current (edited) transcript
        loaded = []
        for job_id in job_ids:
            transcript, record = library.transcript(job_id), library.job(job_id)
            if transcript is not None and record is not None:
                loaded.append((transcript, record.path))
        return loaded

    def _default_folder(self, settings: QSettings) -> str:
        remembered = str(settings.value("export/folder", "") or "")
        if remembered and Path(remembered).is_dir():
            return remembered
        for _transcript, source in self.items:
            if source and Path(source).parent.is_dir():
                return str(Path(source).parent)
        return str(Path.home())

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder_edit.text())
        if folder:
            self.folder_edit.setText(folder)

    def formats(self) -> list[str]:
        return [fmt for fmt, check in self.format_checks.items() if check.isChecked()]

    def _update(self) -> None:
        self.export_button.setEnabled(bool(self.items and self.formats() and self.folder_edit.text().strip()))

    def _line_limit(self) -> int | None:
        return self.max_line_length.value() or None

    def planned(self) -> list[tuple[Transcript, str, Path]]:
        """(transcript, format, path) for every file the export writes."""
        folder = Path(self.folder_edit.text().strip()).expanduser()
        formats = self.formats()
        paths = export_paths([source for _t, source in self.items], folder, formats)
        return [(transcript, fmt, path) for (transcript, _s), row in zip(self.items, paths) for fmt, path in zip(formats, row)]

    def export(self) -> list[Path]:
        """Write every file (asking first about existing ones). Returns the paths written."""
        self.written, self.failures = [], []
        if not self.export_button.isEnabled():
            return []
        plan = self.planned()
        existing = [path for _t, _f, path in plan if path.exists()]
        choice = OVERWRITE
        if existing:
            choice = self.ask_overwrite(existing)
            if choice == CANCEL:
                self.summary.setPlainText("Export cancelled: nothing was written.")
                return []
        for transcript, fmt, path in plan:
            target = unique_path(path) if choice == KEEP_BOTH and path.exists() else path
            try:
                self.written.append(export_transcript(
                    transcript, target, fmt, overwrite=choice == OVERWRITE, max_line_length=self._line_limit(),
                    max_lines=self.max_lines.value(), timestamps=self.timestamps.isChecked()))
            except WhisperDeskError as exc:
                self.failures.append(str(exc))
        self._remember()
        self._show_summary()
        if self.written:
            self.exported.emit(list(self.written))
        return self.written

    def _show_summary(self) -> None:
        lines = []
        if self.written:
            folders = {p.parent for p in self.written}
            where = f" to {next(iter(folders))}" if len(folders) == 1 else ""
            lines.append(f"Wrote {len(self.written)} file{'s' if len(self.written) != 1 else ''}{where}:")
            lines += [f"  {p.name}" if where else f"  {p}" for p in self.written]
        if self.failures:
            lines.append(f"{len(self.failures)} could not be written:")
            lines += [f"  {reason}" for reason in self.failures]
        self.summary.setPlainText("\n".join(lines))

    def _remember(self) -> None:
        settings = _settings()
        settings.setValue("export/formats", self.formats())
        settings.setValue("export/folder", self.folder_edit.text().strip())
        settings.setValue("export/max_line_length", self.max_line_length.value())
        settings.setValue("export/max_lines", self.max_lines.value())
        settings.setValue("export/timestamps", "true" if self.timestamps.isChecked() else "false")


def _stored_list(value: Any, default: Sequence[str]) -> Sequence[str]:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


# --- import for review -------------------------------------------------------------------------------------

def _matching_audio(subtitles: Path) -> Path | None:
    """A media file next to the subtitles with the same name (talk.srt -> talk.mp3), if there is one."""
    from worker.audio import MEDIA_EXTENSIONS

    for candidate in sorted(subtitles.parent.glob(f"{subtitles.stem}.*")):
        if candidate.suffix.lower() in MEDIA_EXTENSIONS and candidate.is_file():
            return candidate
    return None


def import_for_review(parent: QWidget | None, library: Any = None, subtitle_path: str | Path | None = None,
                      audio_path: str | Path | None = None, notify: Callable[[str], None] | None = None) -> Any:
    """Open an SRT/VTT with its audio as a transcript to review. See the module docstring for the result."""
    def tell(message: str) -> None:
        if notify is not None:
            notify(message)
        else:
            QMessageBox.warning(parent, "Cannot import subtitles", message)

    if subtitle_path is None:
        patterns = " ".join(f"*{suffix}" for suffix in IMPORT_SUFFIXES)
        chosen, _ = QFileDialog.getOpenFileName(parent, "Open subtitles to review", "", f"Subtitles ({patterns});;All files (*)")
        if not chosen:
            return None
        subtitle_path = chosen
    subtitles = Path(subtitle_path)
    try:
        transcript = import_subtitles(subtitles)
    except WhisperDeskError as exc:
        tell(str(exc))
        return None

    if audio_path is None:
        from worker.audio import MEDIA_EXTENSIONS

        guess = _matching_audio(subtitles)
        patterns = " ".join(f"*{suffix}" for suffix in sorted(MEDIA_EXTENSIONS))
        chosen, _ = QFileDialog.getOpenFileName(parent, f"Choose the audio or video of {subtitles.name}",
                                                str(guess or subtitles.parent), f"Audio and video ({patterns});;All files (*)")
        if not chosen:
            return None
        audio_path = chosen
    audio = Path(audio_path)
    try:
        from worker.audio import probe_duration

        duration = probe_duration(audio)
    except MediaError as exc:
        tell(str(exc))
        return None
    except WhisperDeskError as exc:
        tell(f"{audio.name}: {exc}")
        return None
    first = transcript.segments[0].start
    if duration > 0 and first > duration + 1.0:
        tell(f"{subtitles.name}: the first cue starts at {first:.1f} s, after the end of {audio.name} ({duration:.1f} s); "
             "is this the right audio?")
        return None
    transcript.source = str(audio)
    transcript.duration = round(duration, 3) if duration > 0 else transcript.duration
    if library is None:
        return transcript, audio

    from worker.options import TranscriptionOptions

    record = library.add_job(audio, TranscriptionOptions(), "local")  # "local": re-running it transcribes the audio
    now = time.time()
    library.update_job(record.id, status="done", duration=transcript.duration, started=now, finished=now, elapsed=0.0)
    library.save_transcript(record.id, transcript)
    library.add_log_line(record.id, f"imported {subtitles.name} ({len(transcript.segments)} cues) for review")
    return record.id


__all__ = ["ExportDialog", "import_for_review", "ask_overwrite_dialog", "OVERWRITE", "KEEP_BOTH", "CANCEL"]

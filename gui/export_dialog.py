"""Export one or many transcripts in one step, and import subtitles (with their audio) for review.

ExportDialog(items, job_ids=None, parent=None, *, folder=None, formats=None, ask_overwrite=None)
    items: a list of (Transcript, source path), or a Library together with job_ids (their current,
    edited transcripts). Asks before overwriting (Overwrite / Keep both / Cancel), then writes every chosen
    format for every transcript into one folder in a background thread (ExportWriter, through the one export
    pipeline: worker.jobs.export; Cancel stops after the current file), lists the files written and emits
    exportFinished(written paths, failures).
ImportForReview(parent, library=None, notify=None).start(subtitle_path=None, audio_path=None)
    asks for an .srt/.vtt and its audio (unless given), reads and checks them off the GUI thread, then emits
    done((Transcript, audio path)), or with a library adds a finished job holding the subtitles and emits
    done(its id); failed(reason) after telling why; cancelled when a file dialog was cancelled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from gui.background import Call
from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, MediaError, WhisperDeskError
from worker.jobs.export import exporter as export_pipeline
from worker.jobs.preferences import Preferences
from worker.jobs.review_import import add_review_job, fit_to_audio, read_subtitles
from worker.transcripts.formats import EXPORT_FORMATS, FORMAT_LABELS, IMPORT_SUFFIXES, Exported, Exporter, export_paths
from worker.transcripts.model import Transcript
from worker.transcripts.subtitles import SubtitleRules

OVERWRITE, KEEP_BOTH, CANCEL = "overwrite", "keep both", "cancel"
DEFAULT_FORMATS = ("srt", "txt")
CLOSE_WAIT_MS = 10_000  # closing while writing waits this long for the file being written
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


# --- background threads ------------------------------------------------------------------------------------

class ExportWriter(Call):
    """Writes the planned files one by one off the GUI thread, through the one export pipeline (word timestamps a
    transcript lacks are computed from its audio first); cancel() stops after the file being written, or during
    an alignment (that file is not written)."""

    progress = Signal(int, int, str)  # number of the file being written (from 1), files in all, its name
    ended = Signal(object)  # this writer, once written / failures / unwritten are final

    def __init__(self, plan: list[tuple[Transcript, str, Path]], choice: str, *, timestamps: bool,
                 rules: SubtitleRules | None = None) -> None:
        super().__init__()
        self.plan, self.choice = plan, choice
        self.rules, self.timestamps = rules, timestamps
        self.notes: list[str] = []  # per subtitle file: what could not follow the rules (one line); failed alignments
        self.written: list[Path] = []
        self.failures: list[str] = []
        self._cancelled = False
        self._cancel = CancelToken()  # stops a word alignment half-way

    def cancel(self) -> None:
        self._cancelled = True
        self._cancel.cancel()

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    @property
    def unwritten(self) -> int:
        """Files not even tried because of cancel()."""
        return len(self.plan) - len(self.written) - len(self.failures)

    def run(self) -> None:
        # the alignment models live as long as this pipeline: one load for every transcript of the export
        pipeline = export_pipeline(self.rules, timestamps=self.timestamps, cancel=self._cancel)
        for number, (transcript, fmt, path) in enumerate(self.plan, 1):
            if self._cancelled:
                break
            self.progress.emit(number, len(self.plan), path.name)
            notes_told = len(pipeline.notes)
            try:
                exported = self._write(pipeline, transcript, fmt, path)
            except Cancelled:
                break  # cancelled while its words were aligned: this file is not written
            except WhisperDeskError as exc:
                self.failures.append(str(exc))
                continue
            except Exception as exc:  # unexpected (e.g. an unwrapped OSError): reported, never lost in the thread
                self.failures.append(f"{path.name}: {exc}")
                continue
            finally:
                self.notes += pipeline.notes[notes_told:]  # word timestamps that could not be computed
            self.written.append(exported.path)
            if exported.report:
                self.notes.append(f"{exported.path.name}: {exported.report}")
        self.ended.emit(self)

    def _write(self, pipeline: Exporter, transcript: Transcript, fmt: str, path: Path) -> Exported:
        if self.choice == KEEP_BOTH:  # an existing file gets a numbered sibling
            return pipeline.write_new(transcript, path, fmt)
        return pipeline.write(transcript, path, fmt, overwrite=self.choice == OVERWRITE)


class ExportDialog(QDialog):
    exported = Signal(list)  # the paths written
    exportFinished = Signal(list, list)  # after export(): the paths written, why the others could not be

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
        self.notes: list[str] = []  # subtitle rules that could not all hold, one line per file
        self._writer: ExportWriter | None = None  # while files are being written
        from gui.settings import stored_number

        settings = _settings()
        prefs = Preferences.load()

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
        self.max_line_length.setValue(stored_number(settings, "export/max_line_length", prefs.subtitle_max_line_chars))
        self.max_line_length.setToolTip("Subtitles (SRT, VTT, ASS): cues re-cut from word timestamps to follow the "
                                        "rules; no limit: one cue per segment")
        self.max_lines = QSpinBox()
        self.max_lines.setObjectName("maxLines")
        self.max_lines.setRange(1, 6)
        self.max_lines.setValue(stored_number(settings, "export/max_lines", prefs.subtitle_max_lines))
        self.max_cps = QDoubleSpinBox()
        self.max_cps.setObjectName("maxCps")
        self.max_cps.setRange(1.0, 60.0)
        self.max_cps.setDecimals(1)
        self.max_cps.setSuffix(" characters/s")
        self.max_cps.setValue(stored_number(settings, "export/max_cps", float(prefs.subtitle_max_cps)))
        self.min_duration = QSpinBox()
        self.min_duration.setObjectName("minDuration")
        self.min_duration.setRange(0, 10_000)
        self.min_duration.setSingleStep(100)
        self.min_duration.setSuffix(" ms")
        self.min_duration.setValue(stored_number(settings, "export/min_duration_ms", prefs.subtitle_min_duration_ms))
        self.min_gap = QSpinBox()
        self.min_gap.setObjectName("minGap")
        self.min_gap.setRange(0, 2_000)
        self.min_gap.setSingleStep(10)
        self.min_gap.setSuffix(" ms")
        self.min_gap.setValue(stored_number(settings, "export/min_gap_ms", prefs.subtitle_min_gap_ms))
        self.karaoke = QCheckBox("Karaoke: each word's time (VTT, ASS)")
        self.karaoke.setObjectName("karaoke")
        self.karaoke.setChecked(str(settings.value("export/karaoke", "false")).lower() == "true")
        self.timestamps = QCheckBox("Start each line with its time range (TXT, DOCX)")
        self.timestamps.setObjectName("timestamps")
        self.timestamps.setChecked(str(settings.value("export/timestamps", "false")).lower() == "true")
        form.addRow("Max line length", self.max_line_length)
        form.addRow("Lines per cue", self.max_lines)
        form.addRow("Reading speed at most", self.max_cps)
        form.addRow("Cues last at least", self.min_duration)
        form.addRow("Gap between cues", self.min_gap)
        form.addRow(self.karaoke)
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
        self.progress = QProgressBar()
        self.progress.setObjectName("exportProgress")
        self.progress.hide()

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.ApplyRole)
        self.export_button.setObjectName("exportButton")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.export)
        self.cancel_button = self.buttons.addButton("Cancel", QDialogButtonBox.ButtonRole.ActionRole)
        self.cancel_button.setObjectName("cancelExportButton")
        self.cancel_button.setToolTip("Stop after the file being written (the files written stay)")
        self.cancel_button.clicked.connect(self.cancel_export)
        self.cancel_button.hide()
        self.buttons.rejected.connect(self.reject)
        self._inputs: list[QWidget] = [format_box, options, self.folder_edit, browse]  # locked while writing

        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(format_box)
        layout.addWidget(options)
        layout.addLayout(folder_row)
        layout.addWidget(self.summary, 1)
        layout.addWidget(self.progress)
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
            transcript, record = library.transcripts.get(job_id), library.jobs.get(job_id)
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
        self.export_button.setEnabled(self._writer is None and bool(self.items and self.formats()
                                                                    and self.folder_edit.text().strip()))

    def rules(self) -> SubtitleRules | None:
        """The subtitle rules chosen; None with no line limit (one cue per segment)."""
        if not self.max_line_length.value():
            return None
        return SubtitleRules(max_line_chars=self.max_line_length.value(), max_lines=self.max_lines.value(),
                             max_cps=self.max_cps.value(), min_duration_ms=self.min_duration.value(),
                             min_gap_ms=self.min_gap.value(), karaoke=self.karaoke.isChecked())

    def planned(self) -> list[tuple[Transcript, str, Path]]:
        """(transcript, format, path) for every file the export writes."""
        folder = Path(self.folder_edit.text().strip()).expanduser()
        formats = self.formats()
        paths = export_paths([source for _t, source in self.items], folder, formats)
        return [(transcript, fmt, path) for (transcript, _s), row in zip(self.items, paths) for fmt, path in zip(formats, row)]

    def export(self) -> bool:
        """Ask about existing files, then start writing every file in the background: exportFinished (and
        `written`, `failures`) when done. False when nothing was started (nothing to export, already
        writing, or the overwrite question was cancelled)."""
        if not self.export_button.isEnabled():
            return False
        self.written, self.failures = [], []
        plan = self.planned()
        existing = [path for _t, _f, path in plan if path.exists()]
        choice = OVERWRITE
        if existing:
            choice = self.ask_overwrite(existing)
            if choice == CANCEL:
                self.summary.setPlainText("Export cancelled: nothing was written.")
                return False
        self._writer = ExportWriter(plan, choice, timestamps=self.timestamps.isChecked(), rules=self.rules())
        self._writer.progress.connect(self._show_progress)
        self._writer.ended.connect(self._writer_ended)
        self._set_writing(True, len(plan))
        self._writer.start()
        return True

    def cancel_export(self) -> None:
        """Stop after the file being written; the files already written stay."""
        if self._writer is not None:
            self._writer.cancel()
            self.cancel_button.setEnabled(False)
            self.progress.setFormat("Stopping after the current file…")

    def is_writing(self) -> bool:
        return self._writer is not None

    def _set_writing(self, writing: bool, total: int = 0) -> None:
        for widget in self._inputs:
            widget.setEnabled(not writing)
        self.cancel_button.setVisible(writing)
        self.cancel_button.setEnabled(writing)
        self.progress.setVisible(writing)
        if writing:
            self.summary.clear()
            self.progress.setRange(0, total)
            self.progress.setValue(0)
            self.progress.setFormat(f"Writing 1 of {total}…")
        self._update()

    def _show_progress(self, number: int, total: int, name: str) -> None:
        if self._writer is None or self._writer.cancelled:
            return  # late news from a writer already collected or told to stop
        self.progress.setValue(number - 1)
        self.progress.setFormat(f"Writing {number} of {total}: {name.replace('%', '%%')}…")

    def _writer_ended(self, writer: ExportWriter) -> None:
        if writer is not self._writer:
            return  # already collected (the dialog was closed while it wrote)
        self._writer = None
        writer.wait()  # `ended` comes just before the thread stops
        self.written, self.failures = list(writer.written), list(writer.failures)
        self.notes = list(writer.notes)
        self._set_writing(False)
        self._remember()
        self._show_summary(writer.unwritten)
        if self.written:
            self.exported.emit(list(self.written))
        self.exportFinished.emit(list(self.written), list(self.failures))

    def _stop_writing(self) -> None:
        """Closing while writing: stop after the current file, wait for it, and report what was written."""
        writer = self._writer
        if writer is None:
            return
        writer.cancel()
        if writer.wait(CLOSE_WAIT_MS):
            self._writer_ended(writer)
        else:  # stuck (e.g. on a dead network share): let it go; gui.background holds it until it ends
            self._writer = None

    def done(self, result: int) -> None:  # accept() and reject() end here
        self._stop_writing()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:  # also when closed hidden, which skips reject()
        self._stop_writing()
        super().closeEvent(event)

    def _show_summary(self, unwritten: int = 0) -> None:
        lines = []
        if self.written:
            folders = {p.parent for p in self.written}
            where = f" to {next(iter(folders))}" if len(folders) == 1 else ""
            lines.append(f"Wrote {len(self.written)} file{'s' if len(self.written) != 1 else ''}{where}:")
            lines += [f"  {p.name}" if where else f"  {p}" for p in self.written]
        if self.notes:
            lines.append("Subtitle rules that could not all hold:")
            lines += [f"  {note}" for note in self.notes]
        if self.failures:
            lines.append(f"{len(self.failures)} could not be written:")
            lines += [f"  {reason}" for reason in self.failures]
        if unwritten:
            lines.append(f"Cancelled: {unwritten} file{'s' if unwritten != 1 else ''} not written.")
        self.summary.setPlainText("\n".join(lines))

    def _remember(self) -> None:
        settings = _settings()
        settings.setValue("export/formats", self.formats())
        settings.setValue("export/folder", self.folder_edit.text().strip())
        settings.setValue("export/max_line_length", self.max_line_length.value())
        settings.setValue("export/max_lines", self.max_lines.value())
        settings.setValue("export/max_cps", self.max_cps.value())
        settings.setValue("export/min_duration_ms", self.min_duration.value())
        settings.setValue("export/min_gap_ms", self.min_gap.value())
        settings.setValue("export/karaoke", "true" if self.karaoke.isChecked() else "false")
        settings.setValue("export/timestamps", "true" if self.timestamps.isChecked() else "false")


def _stored_list(value: Any, default: Sequence[str]) -> Sequence[str]:
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


# --- import for review -------------------------------------------------------------------------------------

class ImportForReview(QObject):
    """Opens an SRT/VTT with its audio as a transcript to review. The file dialogs and the library write run on
    the GUI thread; reading the subtitles and probing the audio (which may decode it all) run in the background.
    Connect the signals, then start(). Problems go to `notify`, or a message box without one."""

    done = Signal(object)  # the new job's id with a library, else (Transcript, audio Path)
    failed = Signal(str)  # the one-line reason, after telling it
    cancelled = Signal()  # a file dialog was cancelled: nothing imported, nothing said

    def __init__(self, parent: QWidget | None = None, library: Any = None,
                 notify: Callable[[str], None] | None = None, jobs: Any = None) -> None:
        super().__init__(parent)
        self._window = parent
        self.library = library
        self.jobs = jobs  # the window's job service: the job is added (and reported) through it
        self.notify = notify
        self._subtitles = Path()
        self._audio: Path | None = None
        self._transcript: Transcript | None = None
        self._call: Call | None = None  # the background step in progress
        self._then: Callable[[Any], None] = lambda _value: None
        self._explain: Callable[[Exception], str] = str
        self._dropped = False

    def start(self, subtitle_path: str | Path | None = None, audio_path: str | Path | None = None) -> None:
        """Ask for the files not given, then read and check them in the background."""
        if self._call is not None:
            raise RuntimeError("this import is already running")
        if subtitle_path is None:
            subtitle_path = self._ask_subtitles()
            if subtitle_path is None:
                self.cancelled.emit()
                return
        subtitles = self._subtitles = Path(subtitle_path)
        self._audio = Path(audio_path) if audio_path is not None else None
        guess_audio = self._audio is None
        self._in_background(lambda: read_subtitles(subtitles, guess_audio=guess_audio),
                            self._subtitles_read, self._subtitle_problem)

    def cancel(self) -> None:
        """Drop the import in progress: nothing more is asked, written, said or emitted (e.g. when closing)."""
        self._dropped = True

    def _ask_subtitles(self) -> str | None:
        patterns = " ".join(f"*{suffix}" for suffix in IMPORT_SUFFIXES)
        chosen, _ = QFileDialog.getOpenFileName(self._window, "Open subtitles to review", "",
                                                f"Subtitles ({patterns});;All files (*)")
        return chosen or None

    def _ask_audio(self, guess: Path | None) -> Path | None:
        from worker.media.audio import MEDIA_EXTENSIONS

        patterns = " ".join(f"*{suffix}" for suffix in sorted(MEDIA_EXTENSIONS))
        chosen, _ = QFileDialog.getOpenFileName(self._window, f"Choose the audio or video of {self._subtitles.name}",
                                                str(guess or self._subtitles.parent),
                                                f"Audio and video ({patterns});;All files (*)")
        return Path(chosen) if chosen else None

    def _in_background(self, function: Callable[[], Any], then: Callable[[Any], None],
                       explain: Callable[[Exception], str]) -> None:
        self._then, self._explain = then, explain
        self._call = Call(function)
        self._call.returned.connect(self._call_returned)
        self._call.raised.connect(self._call_raised)
        self._call.start()

    def _call_returned(self, value: Any) -> None:
        self._call = None
        if not self._dropped:
            self._then(value)

    def _call_raised(self, exc: Exception) -> None:
        self._call = None
        if not self._dropped:
            self._fail(self._explain(exc))

    def _subtitle_problem(self, exc: Exception) -> str:
        return str(exc) if isinstance(exc, WhisperDeskError) else f"{self._subtitles.name}: {exc}"

    def _audio_problem(self, exc: Exception) -> str:
        name = self._audio.name if self._audio else "audio"
        return str(exc) if isinstance(exc, MediaError) else f"{name}: {exc}"

    def _subtitles_read(self, value: tuple[Transcript, Path | None]) -> None:
        self._transcript, guess = value
        if self._audio is None:
            self._audio = self._ask_audio(guess)
            if self._audio is None:
                self.cancelled.emit()
                return
        from worker.media.audio import probe_duration

        audio = self._audio
        self._in_background(lambda: float(probe_duration(audio)), self._probed, self._audio_problem)

    def _probed(self, duration: float) -> None:
        transcript, audio, subtitles = self._transcript, self._audio, self._subtitles
        assert transcript is not None and audio is not None
        try:
            transcript = fit_to_audio(transcript, subtitles, audio, duration)
        except MediaError as exc:
            self._fail(str(exc))
            return
        if self.jobs is not None:
            self.done.emit(self.jobs.add_review_job(transcript, audio, subtitles))
            return
        self.done.emit((transcript, audio) if self.library is None
                       else add_review_job(self.library, transcript, audio, subtitles))

    def _fail(self, message: str) -> None:
        if self.notify is not None:
            self.notify(message)
        else:
            QMessageBox.warning(self._window, "Cannot import subtitles", message)
        self.failed.emit(message)


__all__ = ["ExportDialog", "ExportWriter", "ImportForReview", "ask_overwrite_dialog", "OVERWRITE", "KEEP_BOTH", "CANCEL"]

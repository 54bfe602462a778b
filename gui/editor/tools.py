"""The editor's power tools, on the "Tools" menu of its toolbar (gui.editor.widget.TranscriptEditor creates them):

- Shift times of every segment, or of the selected ones, by an offset (one undo step);
- Re-transcribe the selected segments, or a time range, with another model, language or backend: the range
  is decoded and transcribed off the GUI thread (worker.media.region) and replaces the old segments in one step;
- Fit to subtitle rules: the transcript re-cut as subtitle cues (worker.transcripts.subtitles), one undo step;
- Karaoke: while playing, the word under the playhead is highlighted in its segment;
- Mark uncertain words: words below the probability threshold of the preferences, red and underlined;
- Export karaoke: ASS ({\\k} per word) or VTT (<00:00:01.000> before each word), written off the GUI thread.

The data operations live in worker/transcripts/editing.py, worker/media/region.py and worker/transcripts/subtitles.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QLineEdit,
    QMenu,
    QRadioButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.background import Call
from gui.editor.columns import TEXT
from gui.editor.commands import ChangeSegments, ReplaceRows
from gui.editor.copies import copy_segment, segment_key
from gui.editor.delegates import MarkedTextDelegate, marked_html
from worker.backends.base import BACKEND_LABELS
from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, WhisperDeskError
from worker.core.options import MODEL_NAMES, TranscriptionOptions
from worker.jobs.preferences import Preferences
from worker.transcripts.editing import (
    format_timestamp,
    low_confidence,
    parse_timestamp,
    region_for,
    shift_segments,
    word_at,
    word_spans,
)
from worker.transcripts.model import Segment
from worker.transcripts.subtitles import KARAOKE_FORMATS, SubtitleRules

if TYPE_CHECKING:
    from gui.editor.widget import TranscriptEditor
    from worker.backends.base import Backend


def default_backend(name: str) -> "Backend":
    """A backend configured as the preferences say (runs on the re-transcription thread)."""
    from worker.jobs.backend_pool import create_backend

    return create_backend(name, **Preferences.load().backend_settings(name))


# --- dialogs -------------------------------------------------------------------------------------------------------

class ShiftDialog(QDialog):
    """Offset in seconds (negative: earlier), for all segments or the selected ones."""

    def __init__(self, parent: QWidget, selected: int) -> None:
        super().__init__(parent)
        self.setWindowTitle("Shift times")
        self.setObjectName("shiftDialog")
        self.offset = QDoubleSpinBox(self)
        self.offset.setObjectName("shiftOffset")
        self.offset.setRange(-86400.0, 86400.0)
        self.offset.setDecimals(3)
        self.offset.setSingleStep(0.1)
        self.offset.setSuffix(" s")
        self.all_segments = QRadioButton("All segments", self)
        self.selected_segments = QRadioButton(f"The {selected} selected segment{'s' if selected != 1 else ''}", self)
        self.selected_segments.setEnabled(selected > 0)
        (self.selected_segments if selected > 1 else self.all_segments).setChecked(True)
        form = QFormLayout()
        form.addRow("Move by", self.offset)
        form.addRow(self.all_segments)
        form.addRow(self.selected_segments)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)


class RegionDialog(QDialog):
    """What to re-transcribe (the selection or a time range) and how (backend, model, language)."""

    def __init__(self, parent: QWidget, selected: int, span: tuple[float, float], preferences: Preferences,
                 language: str | None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Re-transcribe a region")
        self.setObjectName("regionDialog")
        self.selection = QRadioButton(f"The {selected} selected segment{'s' if selected != 1 else ''}", self)
        self.selection.setEnabled(selected > 0)
        self.time_range = QRadioButton("A time range", self)
        (self.selection if selected else self.time_range).setChecked(True)
        self.start_edit = QLineEdit(format_timestamp(span[0]), self)
        self.start_edit.setObjectName("regionStart")
        self.end_edit = QLineEdit(format_timestamp(span[1]), self)
        self.end_edit.setObjectName("regionEnd")
        self.backend = QComboBox(self)
        self.backend.setObjectName("regionBackend")
        for name, label in BACKEND_LABELS.items():
            self.backend.addItem(label, name)
        self.backend.setCurrentIndex(max(0, self.backend.findData(preferences.backend)))
        self.model = QComboBox(self)
        self.model.setObjectName("regionModel")
        self.model.addItems(list(MODEL_NAMES))
        self.model.setCurrentText(preferences.model)
        self.language = QLineEdit(language or "", self)
        self.language.setObjectName("regionLanguage")
        self.language.setPlaceholderText("detect")
        self.words = QCheckBox("Word timestamps", self)
        self.words.setChecked(True)
        form = QFormLayout()
        form.addRow(self.selection)
        form.addRow(self.time_range)
        form.addRow("From", self.start_edit)
        form.addRow("To", self.end_edit)
        form.addRow("Backend", self.backend)
        form.addRow("Model", self.model)
        form.addRow("Language", self.language)
        form.addRow(self.words)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Re-transcribe")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)

    def request(self) -> dict[str, Any]:
        """Keyword arguments for EditorTools.retranscribe (ValueError: a time that does not parse)."""
        options = {"backend": self.backend.currentData(), "model": self.model.currentText(),
                   "language": self.language.text().strip() or None, "word_timestamps": self.words.isChecked()}
        if self.time_range.isChecked():
            options["time_range"] = (parse_timestamp(self.start_edit.text()), parse_timestamp(self.end_edit.text()))
        return options


# --- the tools -------------------------------------------------------------------------------------------------------

class EditorTools(QObject):
    """See the module docstring. A region is re-transcribed through the editor's job service (`editor.jobs`:
    the queue's backend pool and the preferences it holds); an editor without one uses `backend_factory(name)`
    (on the region's thread; closed afterwards). `preferences()` gives the subtitle rules and the confidence
    threshold: the job service's, else the saved ones."""

    regionFinished = Signal(int, int)  # segments replaced, segments put in their place
    regionFailed = Signal(str)  # the one-line reason
    fitFinished = Signal(str)  # what could not follow the rules ("" when everything does)
    fitFailed = Signal(str)
    karaokeExported = Signal(object)  # the Path written
    karaokeFailed = Signal(str)

    def __init__(self, editor: "TranscriptEditor", backend_factory: Callable[[str], "Backend"] = default_backend,
                 preferences: Callable[[], Preferences] | None = None) -> None:
        super().__init__(editor)
        self.editor = editor
        self.backend_factory = backend_factory
        self.preferences = preferences or self._held_preferences
        self.spoken: tuple[int, int] = (-1, -1)  # (row, word) under the playhead
        self.mark_uncertain = False
        self.threshold = 0.5
        self._region: Call | None = None
        self._region_cancel: CancelToken | None = None
        self._export: Call | None = None
        self._fit: Call | None = None
        self._fit_before: list[Segment] = []
        self._region_plan: tuple[int, list[Segment]] = (0, [])

        self.delegate = MarkedTextDelegate(editor.view, self.cell_html)
        editor.set_text_delegate(self.delegate)

        self.shift_action = self._action("Shift times…", self.open_shift_dialog,
                                         "Move every segment, or the selected ones, earlier or later")
        self.region_action = self._action("Re-transcribe…", self.open_region_dialog,
                                          "Transcribe the selected segments or a time range again, with another "
                                          "model, language or backend")
        self.cancel_region_action = self._action("Cancel re-transcription", self.cancel_region,
                                                 "Stop the re-transcription running now (nothing is replaced)")
        self.fit_action = self._action("Fit to subtitle rules", self.fit_to_rules,
                                       "Re-cut the segments as subtitle cues (line length, lines, reading speed)")
        self.uncertain_action = self._action("Mark uncertain words", lambda: self.set_mark_uncertain(
            self.uncertain_action.isChecked()), "Red, underlined: words below the confidence threshold in Preferences")
        self.uncertain_action.setCheckable(True)
        self.karaoke_action = self._action("Export karaoke…", self.open_karaoke_export,
                                           "ASS or VTT subtitles with each word's time")
        self.menu = QMenu("Tools", editor)
        for action in (self.shift_action, self.region_action, self.cancel_region_action, self.fit_action, None,
                       self.uncertain_action, self.karaoke_action):
            if action is None:
                self.menu.addSeparator()
            else:
                self.menu.addAction(action)
        self.menu.aboutToShow.connect(self.update_actions)
        self.button = QToolButton(editor)
        self.button.setObjectName("editorToolsButton")
        self.button.setText("Tools")
        self.button.setMenu(self.menu)
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        editor.toolbar.addSeparator()
        editor.toolbar.addWidget(self.button)
        prefs = self.preferences()
        self.set_mark_uncertain(prefs.mark_low_confidence, prefs.low_confidence_threshold)

    def _held_preferences(self) -> Preferences:
        jobs = self.editor.jobs
        return jobs.preferences if jobs is not None else Preferences.load()

    def _action(self, text: str, slot: Callable[[], object], tip: str) -> QAction:
        action = QAction(text, self)
        action.setToolTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def update_actions(self) -> None:
        editor = self.editor
        editable = not editor.model.read_only and editor.metadata() is not None
        has_rows = editor.model.rowCount() > 0
        self.shift_action.setEnabled(editable and has_rows)
        self.region_action.setEnabled(editable and self._source() is not None and self._region is None)
        self.cancel_region_action.setEnabled(self._region is not None)
        self.fit_action.setEnabled(editable and has_rows and self._fit is None)
        self.karaoke_action.setEnabled(has_rows and self._export is None)

    def _source(self) -> Path | None:
        transcript = self.editor.metadata()
        return Path(transcript.source) if transcript is not None and transcript.source else None

    def _selected(self) -> list[int]:
        return self.editor.selected_rows()

    # --- shift ----------------------------------------------------------------------------------------------------

    def open_shift_dialog(self) -> ShiftDialog:
        dialog = ShiftDialog(self.editor, len(self._selected()))
        dialog.accepted.connect(lambda: self.shift(dialog.offset.value(), dialog.selected_segments.isChecked()))
        dialog.open()
        return dialog

    def shift(self, offset: float, selected_only: bool = False) -> bool:
        """Move all (or the selected) segments by `offset` seconds, one undo step. False when refused."""
        model = self.editor.model
        rows = self._selected() if selected_only else list(range(model.rowCount()))
        if not rows or round(offset, 3) == 0:
            return False
        try:
            moved = shift_segments(model.shared_transcript().segments, rows, offset)
        except ValueError as exc:
            self.editor.show_status(f"Not shifted: {exc}")
            return False
        label = f"Shift {len(rows)} segment{'s' if len(rows) != 1 else ''} by {offset:+.3f} s"
        self.editor.push(ChangeSegments(label, model, moved))
        self.editor.show_status(f"{label}.")
        return True

    # --- re-transcribe a region -------------------------------------------------------------------------------------

    def open_region_dialog(self) -> RegionDialog:
        rows = self._selected()
        segments = self.editor.model.shared_transcript().segments
        span = (segments[rows[0]].start, segments[rows[-1]].end) if rows else (0.0, segments[-1].end if segments else 0.0)
        transcript = self.editor.metadata()
        dialog = RegionDialog(self.editor, len(rows), span, self.preferences(), transcript.language if transcript else None)

        def accepted() -> None:
            try:
                request = dialog.request()
            except ValueError as exc:
                self.editor.show_status(f"Not re-transcribed: {exc}")
                return
            self.retranscribe(rows=None if "time_range" in request else rows, **request)

        dialog.accepted.connect(accepted)
        dialog.open()
        return dialog

    def retranscribe(self, rows: list[int] | None = None, time_range: tuple[float, float] | None = None,
                     backend: str = "local", model: str | None = None, language: str | None = None,
                     word_timestamps: bool = True) -> bool:
        """Start re-transcribing the rows' span (or `time_range`, widened to whole segments) off the GUI
        thread; regionFinished or regionFailed follows. False when it cannot start (a status says why)."""
        source = self._source()
        if self.editor.model.read_only or source is None:
            self.editor.show_status("Not re-transcribed: this transcript has no audio file to transcribe from.")
            return False
        if self._region is not None:
            self.editor.show_status("A re-transcription is already running.")
            return False
        try:
            options = TranscriptionOptions(model=model or self.preferences().model, language=language,
                                           word_timestamps=word_timestamps)
            first, stop, start, end = region_for(self.editor.model.shared_transcript().segments, rows, time_range)
        except ValueError as exc:
            self.editor.show_status(f"Not re-transcribed: {exc}")
            return False
        before = [copy_segment(self.editor.model.segment(row)) for row in range(first, stop)]
        cancel = CancelToken()
        factory = self.backend_factory
        jobs, job_id = self.editor.jobs, self.editor.job_id

        def work() -> list[Segment]:
            if jobs is not None:  # on the queue's backend, configured as its preferences say, like any job
                return list(jobs.transcribe_region(source, start, end, options, backend, cancel, job_id=job_id))
            from worker.jobs.region import transcribe_region

            engine = factory(backend)
            try:
                return transcribe_region(engine, source, start, end, options, lambda _event: None, cancel)
            finally:
                engine.close()

        call = Call(work)
        self._region_plan = (first, before)
        call.returned.connect(self._region_done)  # bound methods: nothing arrives once the editor is gone
        call.raised.connect(self._region_raised)
        self.destroyed.connect(cancel.cancel)  # closing the editor stops the backend (and any billing)
        self._region, self._region_cancel = call, cancel
        self.editor.show_status(f"Re-transcribing {format_timestamp(start)}–{format_timestamp(end)} with "
                                f"{options.model} ({BACKEND_LABELS.get(backend, backend)})…")
        call.start()
        return True

    def cancel_region(self) -> None:
        if self._region_cancel is not None:
            self._region_cancel.cancel()

    @property
    def region_running(self) -> bool:
        return self._region is not None

    def _region_done(self, segments: list[Segment]) -> None:
        self._region = self._region_cancel = None
        first, before = self._region_plan
        model = self.editor.model
        if model.read_only or model.segment_keys(first, first + len(before)) != [segment_key(s) for s in before]:
            self._fail_region("The segments changed while they were re-transcribed; nothing was replaced.")
            return
        label = f"Re-transcribe {len(before)} segment{'s' if len(before) != 1 else ''}"
        from worker.speakers.edits import carry_speakers  # the new segments keep who said that time

        segments = carry_speakers(before, segments)
        self.editor.push(ReplaceRows(label, model, first, before, segments))
        self.editor.show_status(f"{label}: {len(segments)} new segment{'s' if len(segments) != 1 else ''} "
                                "(Undo brings the old ones back).")
        self.regionFinished.emit(len(before), len(segments))

    def _region_raised(self, exc: Exception) -> None:
        self._region = self._region_cancel = None
        if isinstance(exc, Cancelled):
            self._fail_region("Re-transcription cancelled; nothing was replaced.")
        elif isinstance(exc, WhisperDeskError):
            self._fail_region(f"Not re-transcribed: {exc}")
        else:
            self._fail_region(f"Not re-transcribed: {type(exc).__name__}: {exc}")

    def _fail_region(self, message: str) -> None:
        self.editor.show_status(message)
        self.regionFailed.emit(message)

    # --- fit to subtitle rules ----------------------------------------------------------------------------------------

    def fit_to_rules(self, rules: SubtitleRules | None = None) -> bool:
        """Start re-cutting the segments as subtitle cues off the GUI thread (segments whose word timestamps
        are missing get them from the audio first: worker.engines.alignment); fitFinished(report) follows, and the
        change is one undo step. False when there is nothing to fit or a fit is running."""
        transcript = self.editor.transcript()
        if transcript is None or self.editor.model.read_only or not transcript.segments or self._fit is not None:
            return False
        rules = rules or self.preferences().subtitle_rules()
        source = self._source()
        cancel = CancelToken()

        def work() -> tuple[list[Segment], str]:
            from worker.engines.alignment import align_missing_words, needs_words
            from worker.transcripts.subtitles import fit_segments

            with_words = transcript
            if source is not None and needs_words(transcript) and source.is_file():
                try:
                    with_words, _count = align_missing_words(transcript, source, cancel)
                except WhisperDeskError:
                    pass  # timed by characters; the report says how many
            segments, result = fit_segments(with_words, rules)
            return segments, result.report_line()

        before = self.editor.model.segments()
        call = Call(work)
        self._fit_before = before
        call.returned.connect(self._fitted)
        call.raised.connect(self._fit_raised)
        self._fit = call
        self.editor.show_status("Fitting to the subtitle rules…")
        call.start()
        return True

    def _fitted(self, value: tuple[list[Segment], str]) -> None:
        self._fit = None
        (segments, report), before = value, self._fit_before
        model = self.editor.model
        if model.read_only or model.segment_keys() != [segment_key(s) for s in before]:
            self._fit_failed("The transcript changed while it was being fitted; nothing was changed.")
            return
        self.editor.push(ReplaceRows("Fit to subtitle rules", model, 0, before, segments))
        self.editor.show_status(f"Fitted to subtitle rules: {len(segments)} cues"
                                + (f"; {report}." if report else ", every one follows the rules."))
        self.fitFinished.emit(report)

    def _fit_raised(self, exc: Exception) -> None:
        self._fit_failed(f"Not fitted: {exc}")

    def _fit_failed(self, message: str) -> None:
        self._fit = None
        self.editor.show_status(message)
        self.fitFailed.emit(message)

    # --- karaoke and uncertain words ------------------------------------------------------------------------------------

    def follow(self, seconds: float, row: int) -> None:
        """The playhead moved (TranscriptEditor.highlight_time): highlight the word being spoken."""
        model = self.editor.model
        word = word_at(model.segment(row), seconds) if 0 <= row < model.rowCount() else -1
        spoken = (row, word) if word >= 0 else (-1, -1)
        if spoken == self.spoken:
            return
        previous, self.spoken = self.spoken, spoken
        for changed in {previous[0], spoken[0]}:
            self._repaint_row(changed)

    def set_mark_uncertain(self, on: bool, threshold: float | None = None) -> None:
        self.mark_uncertain = on
        if threshold is not None:
            self.threshold = threshold
        self.uncertain_action.setChecked(on)
        self.editor.view.viewport().update()

    def cell_html(self, row: int) -> str | None:
        """The text cell of `row` as marked HTML, or None when it shows no marked word."""
        model = self.editor.model
        if not 0 <= row < model.rowCount():
            return None
        spoken = self.spoken[1] if self.spoken[0] == row else -1
        segment = model.segment(row)
        uncertain = set(low_confidence(segment, self.threshold)) if self.mark_uncertain else set()
        if spoken < 0 and not uncertain:
            return None
        spans = word_spans(segment)
        return marked_html(segment.text.strip(), spans, spoken, uncertain) if spans else None

    def _repaint_row(self, row: int) -> None:
        if 0 <= row < self.editor.model.rowCount():
            self.editor.view.viewport().update(self.editor.view.visualRect(self.editor.model.index(row, TEXT)))

    # --- karaoke export -----------------------------------------------------------------------------------------------

    def open_karaoke_export(self) -> None:
        transcript = self.editor.metadata()
        stem = Path(transcript.source).stem if transcript is not None and transcript.source else "transcript"
        path, _filter = QFileDialog.getSaveFileName(self.editor, "Export karaoke subtitles", f"{stem}.ass",
                                                    "ASS karaoke (*.ass);;WebVTT karaoke (*.vtt)")
        if path:
            self.export_karaoke(path)

    def export_karaoke(self, path: str | Path, rules: SubtitleRules | None = None) -> bool:
        """Write ASS or VTT karaoke subtitles (by the path's suffix) off the GUI thread, through the one export
        pipeline (worker.jobs.export: words the transcript lacks are aligned from its audio first)."""
        from dataclasses import replace

        from worker.jobs.export import exporter

        path = Path(path)
        fmt = path.suffix.lower().lstrip(".")
        transcript = self.editor.transcript()
        if fmt not in KARAOKE_FORMATS or transcript is None or self._export is not None:
            self.editor.show_status(f"Not exported: karaoke is written as {' or '.join(KARAOKE_FORMATS)}."
                                    if fmt not in KARAOKE_FORMATS else "Not exported: nothing to export now.")
            return False
        karaoke = replace(rules or self.preferences().subtitle_rules(), karaoke=True)
        audio = self._source()
        call = Call(lambda: exporter(karaoke).write(transcript, path, fmt, overwrite=True, audio=audio).path)
        call.returned.connect(self._exported)
        call.raised.connect(self._export_raised)
        self._export = call
        call.start()
        return True

    def _exported(self, path: Path) -> None:
        self._export = None
        self.editor.show_status(f"Karaoke subtitles written: {path}")
        self.karaokeExported.emit(path)

    def _export_raised(self, exc: Exception) -> None:
        self._export = None
        message = f"Not exported: {exc}"
        self.editor.show_status(message)
        self.karaokeFailed.emit(message)

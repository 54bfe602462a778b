"""The main window: the queue, the transcript of the selected (or just finished) job, the timing log.

Everything slow happens elsewhere: jobs, folder scans and duration probes in the job queue's threads
(worker.jobs.queue, bridged by gui.job_runner), the Modal check and other one-off work in gui.background calls. The editor, player, export dialog and setup wizard
are other modules, imported when first needed.
"""

from __future__ import annotations

import bisect
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from PySide6.QtCore import QEvent, QItemSelectionModel, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDockWidget,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui import status as modal_states
from gui.background import Call
from gui.icons import icon
from gui.job_runner import BackendFactory, QueueController
from gui.log_panel import LogPanel
from gui.queue_model import (
    BACKEND,
    DURATION,
    ELAPSED,
    FILE,
    MODEL,
    PROGRESS,
    STATUS,
    ProgressDelegate,
    QueueModel,
)
from gui.search_panel import SearchPanel
from gui.settings import Preferences, SettingsDialog, load_preferences, settings_store
from gui.watch_runner import WatchRunner
from worker.backends.base import BACKEND_LABELS
from worker.library.job_status import JobStatus
from worker.library.jobs import JobRecord
from worker.library.library import Library
from worker.modal.cost import preload_figures
from worker.transcripts.model import Segment, Transcript

if TYPE_CHECKING:
    from gui.editor import KnownVoicesDialog, TranscriptEditor
    from gui.export_dialog import ExportDialog, ImportForReview
    from gui.wizard import ModalSetupWizard
    from worker.jobs.events import JobFinished, TranscriptEdited, TranscriptReused
    from worker.library.search import SearchHit

WINDOW_TITLE = "Whisper Desk"
LOG_LINES_RESTORED = 2000  # the most recent lines shown at start (the library keeps them all)
LIBRARY_RETRY_MS = 3000  # how often writes the disk refused are tried again


def _format_segment_time(seconds: float) -> str:
    minutes, secs = divmod(max(0.0, seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def _time_order(segment: Segment) -> tuple[float, float]:
    return segment.start, segment.end


def _segment_line(segment: Segment) -> str:
    return f"[{_format_segment_time(segment.start)} → {_format_segment_time(segment.end)}]  {segment.text.strip()}"


class _PlainTranscriptView(QPlainTextEdit):
    """The first paint's light read-only view (segments with their times) until the editor is loaded; it
    answers the part of TranscriptEditor's interface the pane uses."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setReadOnly(True)
        self._transcript: Transcript | None = None

    def set_transcript(self, transcript: Transcript | None, original: Transcript | None = None, job_id: int | None = None) -> None:
        shown, self._transcript = self._transcript, transcript
        if transcript is None:
            self.clear()
            return
        if shown is not None and shown.segments and _extends(transcript.segments, shown.segments):
            for segment in transcript.segments[len(shown.segments):]:  # a running job's new segments: appended
                self.appendPlainText(_segment_line(segment))
            return
        self.setPlainText("\n".join(_segment_line(s) for s in transcript.segments))

    def transcript(self) -> Transcript | None:
        return self._transcript

    def is_edited(self) -> bool:
        return False

    def highlight_time(self, seconds: float) -> int:
        return -1


def _extends(longer: list[Segment], shorter: list[Segment]) -> bool:
    """Whether `longer` is `shorter` (the same segment objects) followed by more."""
    return len(longer) > len(shorter) and all(a is b for a, b in zip(longer, shorter))


class TranscriptPane(QWidget):
    """The transcript of one job, in gui.editor.TranscriptEditor (edits are saved to the library as they
    happen), with gui.player.Player below it once a segment is clicked (playback from that segment, the
    segment under the playhead highlighted).

    The window's first paint uses a light read-only view; `upgrade_editor()` swaps in the editor right after
    (importing it costs tens of ms that the first paint does not wait for)."""

    segmentActivated = Signal(int, float)  # job id, seconds

    def __init__(self, library: Library, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.job_id: int | None = None
        self.live = False  # showing a running job's partial transcript
        self._live: list[Segment] = []  # ... its segments in time order, as they arrived
        self.jobs: Any = None  # the job service (worker.jobs.queue.JobQueue) the editor saves and re-transcribes through
        self.source: str | None = None  # the shown job's media file
        self.player: Any = None
        self.title = QLabel("Drop audio or video files anywhere on this window, or use File > Open.")
        self.title.setObjectName("transcriptTitle")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.editor: "_PlainTranscriptView | TranscriptEditor" = _PlainTranscriptView(self)
        self.editor.setObjectName("transcriptView")
        self.uses_editor = False
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.addWidget(self.title)
        self._layout.addWidget(self.editor, 1)

    def upgrade_editor(self) -> bool:
        """Replace the read-only view with gui.editor.TranscriptEditor. True when swapped."""
        if self.uses_editor:
            return False
        from gui.editor import TranscriptEditor

        editor = TranscriptEditor(self, library=self.library, jobs=self.jobs)
        editor.setObjectName("transcriptEditor")
        editor.transcriptEdited.connect(self._edited)
        editor.segmentActivated.connect(self._activated)
        old = self.editor
        self._layout.replaceWidget(old, editor)
        old.hide()
        old.deleteLater()
        editor.show()
        self.editor = editor
        self.uses_editor = True
        return True

    def show_job(self, record: JobRecord, transcript: Transcript | None, live: bool = False,
                 original: Transcript | None = None) -> None:
        """Show a job: live (running: its segments so far), or finished with `transcript`. `original` is the
        engine's transcript when the caller has it (a job that just finished: the transcript itself); without
        it, the original and whether it was edited are read from the library (another job was picked)."""
        if record.id != self.job_id and self.player is not None:
            self.player.pause()  # another job: its audio is not this one
        self.job_id, self.live, self.source = record.id, live, record.path
        label = f"{record.name} — {record.options.model} on {BACKEND_LABELS.get(record.backend, record.backend)}"
        if live:
            label += " — transcribing…"
            self._live = sorted(transcript.segments, key=_time_order) if transcript is not None else []
        elif transcript is None:
            label += f" — {record.status}" + (f": {record.error}" if record.error else "")
        elif original is None and self.library.transcripts.is_edited(record.id):
            label += " — edited"
        self.title.setText(label)
        if not live and transcript is not None and original is None:
            original = self.library.transcripts.original(record.id)
        self._set(transcript, None if live else original, record.id)

    def add_live_segments(self, segments: list[Segment]) -> None:
        """A running job's new segments (SegmentsArrived), shown without reading anything: appended when they
        come after those shown (the usual case), else put in their place in time order."""
        if not self.live or not segments:
            return
        ordered = sorted(segments, key=_time_order)
        if not self._live or _time_order(ordered[0]) >= _time_order(self._live[-1]):
            self._live.extend(ordered)
        else:  # e.g. Modal chunks finishing out of order
            for segment in ordered:
                bisect.insort(self._live, segment, key=_time_order)
        self._set(Transcript(segments=list(self._live), source=None), None, self.job_id)

    def set_edited(self, edited: bool) -> None:
        """The title says whether the shown transcript differs from the engine's."""
        base = self.title.text().removesuffix(" — edited")
        self.title.setText(base + " — edited" if edited else base)

    def show_nothing(self, message: str) -> None:
        if self.player is not None:
            self.player.pause()
        self.job_id, self.live, self.source = None, False, None
        self.title.setText(message)
        self._set(None, None, None)

    def _set(self, transcript: Transcript | None, original: Transcript | None, job_id: int | None) -> None:
        self.editor.set_transcript(transcript, original=original, job_id=job_id)

    def transcript(self) -> Transcript | None:
        return self.editor.transcript()

    def text(self) -> str:
        """The text shown (what a user reads)."""
        transcript = self.transcript()
        return transcript.text if transcript is not None else ""

    def _edited(self, transcript: Transcript) -> None:
        if self.job_id is None or self.live:
            return  # the editor itself saves the edit, through the job service
        self.set_edited(self.editor.is_edited())

    def _activated(self, seconds: float) -> None:
        if self.job_id is not None:
            self.segmentActivated.emit(self.job_id, float(seconds))
            self.play_from(seconds)

    def play_from(self, seconds: float) -> None:
        """Play the shown job's audio from `seconds` (the player appears the first time)."""
        if self.source is None or not self.ensure_player():
            return
        self.player.play_from(self.source, float(seconds))

    def ensure_player(self) -> bool:
        if self.player is not None:
            return True
        from gui.player import Player

        try:
            self.player = Player(self)
        except Exception:  # no playback on this system: the transcript still works
            return False
        self.player.setObjectName("player")
        self.player.positionChanged.connect(self._highlight)
        self._layout.addWidget(self.player)
        self.player.show()  # added to a visible pane: not shown on its own
        return True

    def _highlight(self, seconds: float) -> None:
        if not self.live:
            self.editor.highlight_time(seconds)

    def show_segment(self, row: int) -> None:
        """Select segment `row` of the shown transcript and scroll to it (in the editor)."""
        if not isinstance(self.editor, _PlainTranscriptView) and 0 <= row < self.editor.model.rowCount():
            self.editor.select_row(row)


class _DropFilter(QObject):
    """Installed on the window's child widgets that accept drops themselves (text views, line edits): it
    takes drags of local files before they do, so files can be dropped anywhere on the window. (Widgets that
    do not accept drops pass drags up to the window, which handles them in dropEvent.)"""

    def __init__(self, window: "MainWindow") -> None:
        super().__init__(window)
        self.window = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop):
            return False
        if not isinstance(watched, QWidget) or watched.window() is not self.window:
            return False
        paths = local_paths(event.mimeData())  # type: ignore[attr-defined]
        if not paths:
            return False
        event.setDropAction(Qt.DropAction.CopyAction)  # type: ignore[attr-defined]
        event.accept()
        if kind == QEvent.Type.Drop:
            self.window.add_paths(paths)
        return True


def local_paths(mime: Any) -> list[str]:
    if mime is None or not mime.hasUrls():
        return []
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]


class MainWindow(QMainWindow):
    """Whisper Desk. `library`, `preferences`, `backend_factory` and `modal_status` can be injected (tests)."""

    shown = Signal()  # the first time the window is on screen

    def __init__(
        self,
        library: Library | None = None,
        preferences: Preferences | None = None,
        backend_factory: BackendFactory | None = None,
        modal_status: modal_states.ModalStatus | None = None,
        modal_ready: Callable[[], bool] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(WINDOW_TITLE)
        self.setWindowIcon(icon("app"))
        self.setAcceptDrops(True)
        self._owns_library = library is None
        self.library = library if library is not None else Library()
        self.preferences = preferences if preferences is not None else load_preferences()
        self.controller = QueueController(self.library, self.preferences, backend_factory, modal_ready, self)
        self.watch_runner = WatchRunner(self.library, self.controller.queue, self)  # Preferences' watch folders
        self.modal_status = modal_status or modal_states.ModalStatus(self)
        self._follow_id: int | None = None  # shown when nothing is selected: the running or just-finished job
        self._wizard: ModalSetupWizard | None = None
        self._closed = False
        self._shown_once = False
        self._offered = False  # the first-start Modal offer was considered this session
        self._importers: set[ImportForReview] = set()  # subtitle imports still reading their files

        self.model = QueueModel(self)
        self.model.modal_settings = self.preferences.backend_settings("modal")  # queued Modal jobs: cost estimate
        Call(preload_figures).start()  # the estimate's figures, read off the GUI thread before a row needs them
        self._build_actions()
        self._build_central()
        self._build_menus()
        self._build_toolbar()
        self._build_statusbar()
        self._connect()
        self._drop_filter = _DropFilter(self)
        self._filtered: set[int] = set()
        self.install_drop_filters()
        self._elapsed_timer = QTimer(self)
        self._elapsed_timer.setInterval(1000)
        self._elapsed_timer.timeout.connect(self.model.refresh_elapsed)
        self._restore_geometry()
        self._restore_library()

    # --- building ------------------------------------------------------------------------------------------

    def _action(self, text: str, icon_name: str | None, slot: Callable[[], Any], shortcuts: Iterable[Any] = (),
                tip: str = "") -> QAction:
        action = QAction(icon(icon_name) if icon_name else icon(""), text, self)
        keys = [QKeySequence(s) for s in shortcuts]
        if keys:
            action.setShortcuts(keys)
        if tip:
            action.setToolTip(f"{tip} ({keys[0].toString(QKeySequence.SequenceFormat.NativeText)})" if keys else tip)
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _build_actions(self) -> None:
        self.open_action = self._action("&Open…", "open", self.open_files, [QKeySequence.StandardKey.Open], "Add audio or video files to the queue")
        self.export_action = self._action("&Export…", "export", self.export_selected, ["Ctrl+E"], "Export the selected (or all finished) transcripts")
        self.import_action = self._action("&Import subtitles for review…", "import", self.import_subtitles, [], "Open an SRT or VTT file with its audio to review")
        self.quit_action = self._action("&Quit", None, self.close, [QKeySequence.StandardKey.Quit])
        self.pause_action = self._action("&Pause queue", "pause", lambda: None, ["Ctrl+P"], "Pause or resume the queue (running jobs finish)")
        self.pause_action.setCheckable(True)
        self.pause_action.toggled.connect(self.controller.set_paused)
        self.cancel_action = self._action("&Cancel", "cancel", self.cancel_selected, ["Esc"], "Cancel the selected jobs (Esc in the queue, Ctrl+. anywhere)")
        self.retry_action = self._action("&Retry", "retry", self.retry_selected, ["Ctrl+R"], "Run the selected jobs again (really transcribed, even a recording transcribed before)")
        self.transcribe_again_action = self._action("Transcribe &again", "retry", self.transcribe_again_selected, [], "Transcribe the selected finished jobs again, even those whose transcript came from an earlier job of the same recording")
        self.remove_action = self._action("Re&move", "remove", self.remove_selected, [QKeySequence.StandardKey.Delete], "Remove the selected jobs from the library")
        self.up_action = self._action("Move &up", "up", lambda: self.move_selected(-1), ["Ctrl+Up"], "Move the selected jobs up the queue")
        self.down_action = self._action("Move &down", "down", lambda: self.move_selected(1), ["Ctrl+Down"], "Move the selected jobs down the queue")
        self.local_action = self._action("Run on &this computer", "computer", lambda: self.set_selected_backend("local"), [], "Run the selected jobs on this computer")
        self.modal_action = self._action("Run on &Modal T4", "cloud", lambda: self.set_selected_backend("modal"), [], "Run the selected jobs on Modal T4 GPUs")
        from gui.speaker_choices import speakers_menu  # per job: Off, Automatic, 2..8 speakers

        self.speakers_menu = speakers_menu(self, self.set_selected_speakers, self._selected_speakers)
        self.settings_action = self._action("&Preferences…", "settings", self.open_settings, ["Ctrl+,"], "Backend, model, language, export defaults")
        self.search_action = self._action("&Search transcripts…", "search", self.show_search, ["Ctrl+Shift+F"], "Search every transcript in the library")
        self.wizard_action = self._action("&Set up Modal…", "cloud", self.open_setup_wizard, [], "Connect a Modal account to run on T4 GPUs")
        self.check_action = self._action("&Check connection", None, self.modal_status.check, [], "Check the Modal token again")
        self.copy_log_action = self._action("Copy timing log", "copy", lambda: self.log_panel.copy_to_clipboard(), [])

    def _build_central(self) -> None:
        self.table = QTableView()
        self.table.setObjectName("queueTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setItemDelegateForColumn(PROGRESS, ProgressDelegate(self.table))
        header = self.table.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(FILE, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(PROGRESS, QHeaderView.ResizeMode.Stretch)
        # fixed widths from the font, not ResizeToContents: that re-measures every row on each progress update
        metrics = self.table.fontMetrics()
        widest = {DURATION: "0:00:00", BACKEND: "This computer", MODEL: "large-v3", STATUS: "cancelling",
                  ELAPSED: "0:00:00"}
        for column, sample in widest.items():
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            title = str(self.model.headerData(column, Qt.Orientation.Horizontal))
            width = max(metrics.horizontalAdvance(sample), metrics.horizontalAdvance(title)) + 24
            self.table.setColumnWidth(column, width)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        # queue-only shortcuts (Esc, Del, Ctrl+Up/Down) must not fire while typing in the editor
        for action in (self.cancel_action, self.retry_action, self.transcribe_again_action, self.remove_action, self.up_action, self.down_action,
                       self.local_action, self.modal_action, self.speakers_menu.menuAction(), self.export_action):
            self.table.addAction(action)
        for action in (self.cancel_action, self.remove_action, self.up_action, self.down_action, self.local_action,
                       self.modal_action):
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        # Ctrl+. cancels from anywhere in the window (Esc only in the queue: editors use it to end an edit)
        self.cancel_anywhere = QAction(self)
        self.cancel_anywhere.setShortcut(QKeySequence("Ctrl+."))
        self.cancel_anywhere.triggered.connect(lambda _checked=False: self.cancel_selected())
        self.addAction(self.cancel_anywhere)

        self.banner = QFrame()
        self.banner.setObjectName("banner")
        self.banner.setFrameShape(QFrame.Shape.StyledPanel)
        self.banner_label = QLabel()
        self.banner_label.setWordWrap(True)
        self.banner_button = QPushButton(icon("cloud"), "Set up Modal…")
        self.banner_button.clicked.connect(self.open_setup_wizard)
        close = QToolButton()
        close.setText("×")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.banner.hide)
        row = QHBoxLayout(self.banner)
        row.addWidget(self.banner_label, 1)
        row.addWidget(self.banner_button)
        row.addWidget(close)
        self.banner.hide()

        self.transcript_pane = TranscriptPane(self.library)
        self.transcript_pane.jobs = self.controller.queue  # the editor saves and re-transcribes through the queue
        self.log_panel = LogPanel()
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.transcript_pane)
        bottom.addWidget(self.log_panel)
        bottom.setStretchFactor(0, 3)
        bottom.setStretchFactor(1, 2)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.table)
        self.splitter.addWidget(bottom)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 0)
        layout.addWidget(self.banner)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        self.search_panel = SearchPanel(self.library)
        self.search_panel.hitChosen.connect(self.open_search_hit)
        self.search_dock = QDockWidget("Search", self)
        self.search_dock.setObjectName("searchDock")
        self.search_dock.setWidget(self.search_panel)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.search_dock)
        self.search_dock.hide()

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        for action in (self.open_action, self.import_action, None, self.search_action, None, self.export_action, None,
                       self.quit_action):
            file_menu.addSeparator() if action is None else file_menu.addAction(action)
        queue_menu = bar.addMenu("&Queue")
        for action in (self.pause_action, None, self.cancel_action, self.retry_action, self.transcribe_again_action, self.remove_action, None,
                       self.up_action, self.down_action, None, self.local_action, self.modal_action,
                       self.speakers_menu.menuAction()):
            queue_menu.addSeparator() if action is None else queue_menu.addAction(action)
        modal_menu = bar.addMenu("&Modal")
        modal_menu.addAction(self.wizard_action)
        modal_menu.addAction(self.check_action)
        settings_menu = bar.addMenu("&Settings")
        settings_menu.addAction(self.settings_action)
        settings_menu.addAction("&Known voices…", self.open_known_voices)
        bar.addMenu("&Live").addAction("&Transcribe an audio input…", self.open_live)  # gui.live_window

    def _build_toolbar(self) -> None:
        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.open_action, None, self.pause_action, self.cancel_action, self.retry_action,
                       self.remove_action, self.up_action, self.down_action, None, self.export_action,
                       self.search_action, self.settings_action):
            toolbar.addSeparator() if action is None else toolbar.addAction(action)

    def _build_statusbar(self) -> None:
        bar = self.statusBar()
        self.totals_label = QLabel()
        self.totals_label.setObjectName("queueTotals")
        self.modal_label = QLabel()
        self.modal_label.setObjectName("modalState")
        self.library_label = QLabel()  # one line when the library is not as usual (see _check_library)
        self.library_label.setObjectName("libraryState")
        self.library_label.hide()
        bar.addPermanentWidget(self.library_label)
        bar.addPermanentWidget(self.totals_label)
        bar.addPermanentWidget(self.modal_label)
        self._modal_state_changed(self.modal_status.state, "")
        self._update_totals()

    def _connect(self) -> None:
        c = self.controller
        c.jobAdded.connect(self._job_added)
        c.jobChanged.connect(self._job_changed)
        c.jobRemoved.connect(self._job_removed)
        c.jobsReordered.connect(self.model.reorder)
        c.jobStarted.connect(self._job_started)
        c.progressed.connect(self._progressed)
        c.segmentsArrived.connect(self._segments_arrived)
        c.jobFinished.connect(self._job_finished)
        c.transcriptEdited.connect(self._transcript_edited)
        c.logLine.connect(lambda _job, line: self.log_panel.append_line(line))
        c.note.connect(self._note)
        c.pathsAdded.connect(self._paths_added)
        c.modalSetupNeeded.connect(self._offer_setup)
        c.durationKnown.connect(self._duration_known)
        c.pausedChanged.connect(self._paused_changed)
        c.transcriptReused.connect(self._transcript_reused)
        self.watch_runner.line.connect(self.log_panel.append_line)
        self.modal_status.changed.connect(self._modal_state_changed)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_pane())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())

    def _restore_library(self) -> None:
        if self.library.notice:  # set aside as damaged, a newer version's (read-only), or kept in memory
            self._note(self.library.notice)
        self._library_timer = QTimer(self)
        self._library_timer.setInterval(LIBRARY_RETRY_MS)
        self._library_timer.timeout.connect(self._check_library)
        self._library_timer.start()
        self._check_library()
        self.model.set_jobs(self.controller.restore())
        self.log_panel.append_lines(self.library.log.lines()[-LOG_LINES_RESTORED:])
        finished = [r for r in self.model.rows() if r.status == JobStatus.DONE]
        if finished:
            self._follow_id = max(finished, key=lambda r: r.record.finished or 0).id
        self._update_pane()
        self._update_totals()
        self._update_actions()
        # interrupted and queued jobs start again (unless the queue is paused) once the window is up: a
        # backend's first heavy imports then run while the window is already on screen
        QTimer.singleShot(150, self._start_queue)

    def _check_library(self) -> None:
        """While the disk refuses writes, retry them and say so in one line; else show the opening notice."""
        if self.library.problem and self.library.retry_kept():
            self._note("The library is saved again.")
        line = self.library.problem or self.library.notice
        self.library_label.setText(line or "")
        self.library_label.setToolTip(line or "")
        self.library_label.setVisible(bool(line))

    def _start_queue(self) -> None:
        if not self._closed:
            self._upgrade_pane()  # (a window never shown gets its editor here)
            self.controller.start()
            self.watch_runner.set_folders(self.preferences.watch_folders, self.preferences.options())
            from gui.live_window import queue_unfinished_recordings

            queue_unfinished_recordings(self.controller.queue)  # what a crash cut short, in the background

    def _restore_geometry(self) -> None:
        store = settings_store()
        geometry = store.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1100, 720)

    # --- first show ------------------------------------------------------------------------------------

    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            QTimer.singleShot(0, self.shown.emit)
            QTimer.singleShot(0, self._upgrade_pane)  # the full editor, right after the first paint
            # after the first paint: reading the Modal config and checking it wait until the window is up
            QTimer.singleShot(400, self._after_start)

    def _upgrade_pane(self) -> None:
        if self._closed or not self.transcript_pane.upgrade_editor():
            return
        self.install_drop_filters()
        self.transcript_pane.job_id = None  # show the current job again, in the editor
        self._update_pane()

    def _after_start(self) -> None:
        if not self._closed:  # in a worker thread: look for a token, and check it if the preferences say so
            self.modal_status.check(network=self.preferences.check_modal_on_start)
            self.controller.warm_up()
            from PySide6.QtWidgets import QStyle, QStyleOptionProgressBar  # noqa: F401  (the progress bars' first paint)

    def _offer_modal_once(self) -> None:
        """On a first start with no Modal token: a gentle, dismissable offer (never a dialog)."""
        store = settings_store()
        if store.value("offered_modal_setup", False, type=bool):
            return
        store.setValue("offered_modal_setup", True)
        self._show_banner("Transcription runs on this computer. To use Modal T4 GPUs in the cloud for long "
                          "files, set up a Modal account (optional).")

    # --- adding files ------------------------------------------------------------------------------------

    def add_paths(self, paths: Iterable[str | Path]) -> None:
        """Queue files and folders (as a drop or File > Open does). Folders are searched in the background:
        the jobs appear, and the status bar says how many, when controller.pathsAdded comes. Skipped files
        are noted in the log."""
        if self.library.read_only:
            self.statusBar().showMessage(self.library.notice or "The library is read-only.", 8000)
            return
        self.statusBar().showMessage("Looking for audio and video files…", 8000)
        self.controller.add_paths(paths)

    def _paths_added(self, records: list[JobRecord], notes: list[str]) -> None:
        if records:
            self.statusBar().showMessage(f"Queued {len(records)} file(s)" + (f"; {len(notes)} skipped" if notes else ""), 8000)
        elif notes:
            self.statusBar().showMessage(notes[0], 8000)

    def install_drop_filters(self) -> None:
        """Route file drops on every child that would take them itself to add_paths (call after adding widgets)."""
        for widget in self.findChildren(QWidget):
            if widget.acceptDrops() and id(widget) not in self._filtered:
                widget.installEventFilter(self._drop_filter)
                self._filtered.add(id(widget))

    def open_files(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        from worker.media.audio import MEDIA_EXTENSIONS

        patterns = " ".join(f"*{ext}" for ext in sorted(MEDIA_EXTENSIONS))
        paths, _ = QFileDialog.getOpenFileNames(self, "Add files", "", f"Audio and video ({patterns});;All files (*)")
        if paths:
            self.add_paths(paths)

    def dragEnterEvent(self, event: Any) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:
        paths = local_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.add_paths(paths)

    # --- selection and actions ---------------------------------------------------------------------------

    def selected_job_ids(self) -> list[int]:
        rows = sorted({index.row() for index in self.table.selectionModel().selectedRows()})
        return [self.model.job_id_at(row) for row in rows]

    def select_jobs(self, job_ids: Iterable[int]) -> None:
        selection = self.table.selectionModel()
        selection.clearSelection()
        for job_id in job_ids:
            row = self.model.row_of(job_id)
            if row is not None:
                selection.select(self.model.index(row, 0),
                                 QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)

    def cancel_selected(self) -> None:
        ids = self.selected_job_ids()
        for job_id in ids:
            if self.controller.is_running(job_id):
                self.model.mark_cancelling(job_id)
        self.controller.cancel(ids)

    def retry_selected(self) -> None:
        self.controller.retry(self.selected_job_ids())

    def transcribe_again_selected(self) -> None:
        """The selected finished jobs transcribed for real (one whose transcript was reused, too)."""
        done = [job_id for job_id in self.selected_job_ids()
                if (row := self.model.job_row(job_id)) is not None and row.status == JobStatus.DONE]
        self.controller.retry(done)

    def remove_selected(self) -> None:
        self.controller.remove(self.selected_job_ids())

    def move_selected(self, delta: int) -> None:
        ids = self.selected_job_ids()
        if ids:
            self.controller.move(ids, delta)
            self.select_jobs(ids)

    def set_selected_backend(self, backend: str) -> None:
        self.controller.set_backend(self.selected_job_ids(), backend)

    def set_selected_speakers(self, speakers: str | None) -> None:
        """Label speakers in the selected jobs ("auto", a count, None: off): their next run (Retry a finished one)."""
        self.controller.set_speakers(self.selected_job_ids(), speakers)

    def _selected_speakers(self) -> set[str | None]:
        rows = [self.model.job_row(job_id) for job_id in self.selected_job_ids()]
        return {row.record.options.speakers for row in rows if row is not None}

    def set_paused(self, paused: bool) -> None:
        self.pause_action.setChecked(paused)

    def _update_actions(self) -> None:
        ids = self.selected_job_ids()
        statuses = [row.status for row in map(self.model.job_row, ids) if row is not None]
        self.cancel_action.setEnabled(any(not JobStatus(s).finished for s in statuses))
        self.retry_action.setEnabled(any(JobStatus(s).finished for s in statuses))
        self.transcribe_again_action.setEnabled(JobStatus.DONE in statuses)
        for action in (self.remove_action, self.up_action, self.down_action, self.local_action, self.modal_action,
                       self.speakers_menu.menuAction()):
            action.setEnabled(bool(ids))

    # --- controller signals ------------------------------------------------------------------------------

    def _job_added(self, record: JobRecord) -> None:
        self.model.add(record)
        self._update_totals()

    def _job_changed(self, record: JobRecord) -> None:
        shown = self.model.job_row(record.id)
        ending = shown is not None and not JobStatus(shown.status).finished and JobStatus(record.status).finished
        self.model.update_record(record)
        self._update_totals()
        self._update_actions()
        if record.id == self.transcript_pane.job_id and record.status != JobStatus.RUNNING and not ending:
            self._update_pane()  # (an ending is shown from JobFinished, which follows with the transcript)

    def _job_removed(self, job_id: int) -> None:
        self.model.remove(job_id)
        if self._follow_id == job_id:
            self._follow_id = None
        self._update_totals()
        self._update_pane()

    def _job_started(self, job_id: int) -> None:
        self.model.mark_running(job_id, time.monotonic())
        if not self._elapsed_timer.isActive():
            self._elapsed_timer.start()
        following = self._follow_id
        if following is None or not self.controller.is_running(following):
            self._follow_id = job_id
        self._update_pane()

    def _progressed(self, job_id: int, fraction: float, label: str, eta: float | None) -> None:
        self.model.set_progress(job_id, fraction, label, eta)

    def _segments_arrived(self, job_id: int, segments: list[Segment]) -> None:
        if self.transcript_pane.job_id == job_id and self.transcript_pane.live and self.shown_job_id() == job_id:
            self.transcript_pane.add_live_segments(segments)

    def _job_finished(self, ending: JobFinished) -> None:
        """A job ended: its status, error, record and (done) transcript come with the report."""
        if ending.record is not None:
            self.model.update_record(ending.record)
        if not self.controller.running_ids():
            self._elapsed_timer.stop()
        if ending.status == JobStatus.DONE:
            self._follow_id = ending.job_id
            self.search_panel.refresh()  # its transcript is searchable as saved
        self._update_pane(ending)
        self._update_totals()
        self._update_actions()

    def _transcript_edited(self, edit: TranscriptEdited) -> None:
        """An edit was saved (by the editor, off the GUI thread): the title says so, and search finds it."""
        if edit.job_id == self.transcript_pane.job_id and not self.transcript_pane.live:
            self.transcript_pane.set_edited(edit.edited)
        self.search_panel.refresh()

    def _transcript_reused(self, reused: TranscriptReused) -> None:
        """A file transcribed before (same recording, model, options) took that transcript: the status bar says
        so, and how to have it transcribed anyway (its JobFinished follows and shows the transcript)."""
        self.statusBar().showMessage(f"{reused.text}. Queue > Transcribe again transcribes it anyway.", 12000)

    def _duration_known(self, job_id: int, seconds: float) -> None:
        if seconds < 0:
            self.model.set_duration_unknown(job_id)

    def _note(self, line: str) -> None:
        self.log_panel.append_line(line)
        self.statusBar().showMessage(line, 8000)

    def _paused_changed(self, paused: bool) -> None:
        self.pause_action.setText("Resume queue" if paused else "&Pause queue")
        self.pause_action.setIcon(icon("start" if paused else "pause"))
        if self.pause_action.isChecked() != paused:
            self.pause_action.setChecked(paused)
        self._update_totals()

    def _update_totals(self) -> None:
        totals = self.model.totals()
        parts = [f"{totals[s]} {s}" for s in JobStatus if totals[s]]
        text = " · ".join(parts) if parts else "queue empty"
        if self.controller.paused:
            text = "paused · " + text
        self.totals_label.setText(text)

    # --- the transcript pane -----------------------------------------------------------------------------

    def shown_job_id(self) -> int | None:
        """The job the transcript pane should show: the current selected row, else the followed job."""
        current = self.table.selectionModel().currentIndex()
        selected = self.selected_job_ids()
        if selected:
            if current.isValid() and self.model.job_id_at(current.row()) in selected:
                return self.model.job_id_at(current.row())
            return selected[0]
        return self._follow_id

    def _update_pane(self, ending: JobFinished | None = None) -> None:
        """Show the job shown_job_id() names: live while it runs, else its transcript (from `ending` when it
        has just finished, from the library when another job was picked)."""
        job_id = self.shown_job_id()
        row = self.model.job_row(job_id) if job_id is not None else None
        record = row.record if row is not None else None
        if record is None:
            self.transcript_pane.show_nothing(
                "Drop audio or video files anywhere on this window, or use File > Open." if not self.model.rowCount()
                else "Select a job to see its transcript.")
            return
        if self.controller.is_running(record.id):
            if not (self.transcript_pane.live and self.transcript_pane.job_id == record.id):
                self.transcript_pane.show_job(record, self.controller.partial_transcript(record.id), live=True)
            return
        if job_id == self.transcript_pane.job_id and not self.transcript_pane.live and record.status == JobStatus.DONE \
                and self.transcript_pane.transcript() is not None:
            return  # already shown (keeps the editor's cursor and undo history)
        if ending is not None and ending.job_id == record.id and ending.transcript is not None:
            self.transcript_pane.show_job(record, ending.transcript, original=ending.transcript)  # just saved
            return
        self.transcript_pane.show_job(record, self.library.transcripts.get(record.id))

    def transcript_text(self) -> str:
        return self.transcript_pane.text()

    # --- Modal -------------------------------------------------------------------------------------------

    def _modal_state_changed(self, state: str, detail: str) -> None:
        self.modal_label.setText(f"Modal: {state}")
        self.modal_label.setToolTip(detail or state)
        if state == modal_states.NOT_SET_UP and not self._offered and not self._closed:
            self._offered = True
            self._offer_modal_once()

    def _offer_setup(self, reason: str) -> None:
        self._show_banner(f"{reason}.")

    def _show_banner(self, text: str, wizard: bool = True) -> None:
        self.banner_label.setText(text)
        self.banner_button.setVisible(wizard)
        self.banner.show()

    def open_setup_wizard(self) -> None:
        from gui.wizard import ModalSetupWizard

        if self._wizard is not None and self._wizard.isVisible():
            self._wizard.raise_()
            return
        self._wizard = ModalSetupWizard(self)
        self._wizard.finished.connect(self._wizard_closed)
        self._wizard.open()

    def _wizard_closed(self, _result: int) -> None:
        self._wizard = None
        self.banner.hide()
        self.modal_status.check()

    # --- export, import, playback, settings --------------------------------------------------------------

    def export_selected(self) -> ExportDialog | None:
        """The export dialog for the selected finished jobs (all finished ones when none is selected)."""
        from gui.export_dialog import ExportDialog

        if not isinstance(editor := self.transcript_pane.editor, _PlainTranscriptView):
            editor.flush_saves()  # exports read the library: the edit just made is there
        ids = [i for i in self.selected_job_ids() if self.library.transcripts.get(i) is not None]
        if not ids:
            ids = [r.id for r in self.library.jobs.all() if r.status == JobStatus.DONE and self.library.transcripts.get(r.id) is not None]
        if not ids:
            self.statusBar().showMessage("No finished transcripts to export.", 8000)
            return None
        dialog = ExportDialog(self.library, ids, parent=self)
        dialog.exported.connect(lambda paths: self._note(f"exported {len(paths)} file(s)"))
        dialog.open()
        return dialog

    def import_subtitles(self, subtitle_path: str | Path | None = None, audio_path: str | Path | None = None) -> ImportForReview:
        """An SRT/VTT with its audio as a finished job to review (asks for the files unless given). The files are
        read in the background: returns the ImportForReview, whose `done` carries the job id once it is selected."""
        from gui.export_dialog import ImportForReview

        def show_job(job_id: int) -> None:  # its row and log line came with the queue's reports
            self.select_jobs([job_id])

        # problems go to the status bar and the log, not a dialog; the job is added through the queue
        importer = ImportForReview(self, self.library, notify=self._note, jobs=self.controller)
        importer.done.connect(show_job)
        self._importers.add(importer)
        for ended in (importer.done, importer.failed, importer.cancelled):
            ended.connect(lambda *_: self._importers.discard(importer))
            ended.connect(importer.deleteLater)
        importer.start(subtitle_path, audio_path)
        return importer

    def show_search(self) -> None:
        self.search_dock.show()
        self.search_dock.raise_()
        self.search_panel.focus_box()

    def open_search_hit(self, hit: SearchHit) -> None:
        """A search hit: its job selected, its transcript shown at the segment, and played from there."""
        self._upgrade_pane()
        self.select_jobs([hit.job_id])
        self._update_pane()
        self.transcript_pane.show_segment(hit.segment)
        self.transcript_pane.play_from(hit.start)

    def open_live(self) -> None:
        """The live transcription window (gui.live_window): one, kept while the app runs."""
        from gui.live_window import LiveWindow

        if getattr(self, "live_window", None) is None:
            self.live_window = LiveWindow(self.controller.queue, self)
        self.live_window.show()
        self.live_window.raise_()
        self.live_window.activateWindow()

    def open_known_voices(self) -> KnownVoicesDialog:
        """The voices the library names in new recordings (gui.editor.speakers_panel), with Delete."""
        from gui.editor import KnownVoicesDialog

        dialog = KnownVoicesDialog(self.library, self)
        dialog.open()
        return dialog

    def open_settings(self) -> None:
        dialog = SettingsDialog(self.preferences, self)
        dialog.accepted.connect(lambda: self.apply_preferences(dialog.preferences()))
        dialog.open()

    def apply_preferences(self, preferences: Preferences) -> None:
        self.preferences = preferences
        preferences.save()
        self.controller.set_preferences(preferences)
        self.model.modal_settings = preferences.backend_settings("modal")
        self.watch_runner.set_folders(preferences.watch_folders, preferences.options())

    # --- closing -----------------------------------------------------------------------------------------

    def closeEvent(self, event: Any) -> None:
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop jobs (they go back to the queue), wait for background checks, close the library if ours."""
        if self._closed:
            return
        self._closed = True
        self._elapsed_timer.stop()
        self._library_timer.stop()
        for importer in list(self._importers):  # a late result must not write to the closed library
            importer.cancel()
        if not isinstance(editor := self.transcript_pane.editor, _PlainTranscriptView):
            editor.flush_saves()  # the last edits reach the library before it closes
        store = settings_store()
        store.setValue("window/geometry", self.saveGeometry())
        self.search_panel.shutdown()
        self.watch_runner.stop()  # no new files queued while the queue stops
        if getattr(self, "live_window", None) is not None:
            self.live_window.shutdown()  # what was heard is saved before the queue and the library close
        self.controller.shutdown()
        self.modal_status.wait()
        if self.transcript_pane.player is not None:
            self.transcript_pane.player.stop()
        if self._owns_library:
            self.library.retry_kept()  # a last chance for writes the disk refused
            self.library.close()

"""The live transcription window: choose an input, start, pause and stop; the words appear as they are heard.

Final words are shown plainly, words that may still change in grey italics after them; the status line says how
much was heard and how far behind the text is. Stop makes everything final and saves the recording as a job of
the queue, which makes its file transcript (worker.live.session); it appears in the window's list like any other.
The capture (gui.live_capture) and the engine (worker.live) run on threads of their own: nothing here waits on
either.

LiveWindow(jobs, parent=None): `jobs` is the window's JobQueue."""

from __future__ import annotations

import html
import logging
import sqlite3
import threading
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QFont
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from gui.live_capture import Capture, InputChoice, list_inputs
from worker.core.errors import WhisperDeskError
from worker.live.agreement import WordTuple
from worker.live.streaming import LiveUpdate

if TYPE_CHECKING:
    from worker.jobs.queue import JobQueue
    from worker.library.jobs import JobRecord
    from worker.live.session import LiveSession

log = logging.getLogger(__name__)

TENTATIVE_COLOUR = "#4b5563"  # grey, and in italics
SHOWN_CHARS = 20000  # of final text kept on screen (the whole of it is in the job)
CAPTURE_DRAIN_S = 2.0


class LiveWindow(QWidget):
    inputsListed = Signal(object, object)  # list[InputChoice], problem line or None
    updated = Signal(object)  # LiveUpdate, from the engine's thread
    saved = Signal(object)  # JobRecord, from the finishing thread
    failed = Signal(str)  # one line

    def __init__(self, jobs: "JobQueue", parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("liveWindow")
        self.setWindowTitle("Live transcription")
        self.jobs = jobs
        self.session: LiveSession | None = None
        self.capture: Capture | None = None
        self.final_text = ""
        self.tentative: tuple[WordTuple, ...] = ()
        self._finishing: threading.Thread | None = None

        self.device_combo = QComboBox(self)
        self.device_combo.setObjectName("liveDevice")
        self.device_combo.setMinimumWidth(320)
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.clicked.connect(self.refresh_inputs)
        self.start_button = QPushButton("Start", self)
        self.start_button.setObjectName("liveStart")
        self.start_button.clicked.connect(self.start)
        self.pause_button = QPushButton("Pause", self)
        self.pause_button.setObjectName("livePause")
        self.pause_button.setCheckable(True)
        self.pause_button.toggled.connect(self._pause_toggled)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setObjectName("liveStop")
        self.stop_button.clicked.connect(self.stop)
        self.text_view = QTextBrowser(self)
        self.text_view.setObjectName("liveText")
        font = QFont(self.text_view.font())
        font.setPointSize(max(font.pointSize(), 14))
        self.text_view.setFont(font)
        self.status_label = QLabel("Choose an input and press Start.", self)
        self.status_label.setObjectName("liveStatus")
        self.status_label.setWordWrap(True)

        controls = QHBoxLayout()
        controls.addWidget(QLabel("Input:", self))
        controls.addWidget(self.device_combo, 1)
        controls.addWidget(self.refresh_button)
        controls.addWidget(self.start_button)
        controls.addWidget(self.pause_button)
        controls.addWidget(self.stop_button)
        layout = QVBoxLayout(self)
        layout.addLayout(controls)
        layout.addWidget(self.text_view, 1)
        layout.addWidget(self.status_label)
        self.resize(820, 420)

        self.inputsListed.connect(self._show_inputs)
        self.updated.connect(self._show_update)
        self.saved.connect(self._saved)
        self.failed.connect(self._failed)
        self._set_state("idle")
        self.refresh_inputs()

    # --- inputs -----------------------------------------------------------------------------------------

    def refresh_inputs(self) -> None:
        """List the inputs off the GUI thread (the sound system may be slow to answer)."""
        self.refresh_button.setEnabled(False)

        def run() -> None:
            choices, problem = list_inputs()
            self._emit(self.inputsListed, choices, problem)

        threading.Thread(target=run, name="live-inputs", daemon=True).start()

    def _show_inputs(self, choices: list[InputChoice], problem: str | None) -> None:
        chosen = self.device_combo.currentText()
        self.device_combo.clear()
        for choice in choices:
            self.device_combo.addItem(choice.label, choice)
        index = self.device_combo.findText(chosen)
        if index >= 0:
            self.device_combo.setCurrentIndex(index)
        self.refresh_button.setEnabled(True)
        if problem:
            self.status_label.setText(problem)
        self._set_state("running" if self.session is not None else "idle")

    def choose_input(self, text: str) -> bool:
        """Pick the first input whose name holds `text`."""
        for index in range(self.device_combo.count()):
            if text in self.device_combo.itemText(index):
                self.device_combo.setCurrentIndex(index)
                return True
        return False

    # --- start, pause, stop -----------------------------------------------------------------------------

    def start(self) -> None:
        from worker.live.session import LiveSession

        choice = self.device_combo.currentData()
        if self.session is not None or not isinstance(choice, InputChoice):
            return
        self.final_text, self.tentative = "", ()
        self._render()
        self.session = LiveSession(choice.label, self.updated.emit,
                                   on_error=lambda line: self._emit(self.failed, f"{line}; recording only"))
        self.capture = Capture(choice, self.session.feed, self)
        self.capture.failed.connect(self._capture_failed)
        self.capture.start()
        self.status_label.setText(f"Listening to {choice.label}…")
        self._set_state("running")

    def pause(self, paused: bool = True) -> None:
        self.pause_button.setChecked(paused)

    def stop(self) -> None:
        """Stop listening; everything heard becomes final and is saved as a job, off the GUI thread."""
        session, capture = self.session, self.capture
        if session is None or self._finishing is not None:
            return
        if capture is not None:
            capture.stop()
        self.status_label.setText("Finishing…")
        self._set_state("finishing")

        def finish() -> None:
            if capture is not None:
                capture.finished(CAPTURE_DRAIN_S)
            session.stop()
            try:
                record = session.save(self.jobs)
            except (sqlite3.Error, OSError, WhisperDeskError) as exc:  # the recording and its marker stay on disk
                log.exception("live: saving the recording failed")
                self._emit(self.failed, f"{session.path.name}: not saved as a job ({exc}); it is queued at the next start")
                return
            self._emit(self.saved, record)

        self._finishing = threading.Thread(target=finish, name="live-finish", daemon=True)
        self._finishing.start()

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """The app is closing: stop and save now (the library is about to close)."""
        self.stop()
        if self._finishing is not None:
            self._finishing.join(timeout_s)

    @property
    def running(self) -> bool:
        return self.session is not None

    def shown_text(self) -> str:
        """The text as shown: final words, then the tentative ones."""
        return (self.final_text + "".join(w[2] for w in self.tentative)).strip()

    # --- what happens -----------------------------------------------------------------------------------

    def _pause_toggled(self, paused: bool) -> None:
        if self.session is None:
            return
        if paused:
            self.session.pause()
        else:
            self.session.resume()
        self.pause_button.setText("Resume" if paused else "Pause")
        self.status_label.setText("Paused: nothing is recorded until Resume." if paused else "Listening…")

    def _show_update(self, update: LiveUpdate) -> None:
        if self.session is None:
            return
        self.final_text = (self.final_text + "".join(w[2] for w in update.final))[-SHOWN_CHARS:]
        self.tentative = update.tentative
        self._render()
        if not update.finished and not self.pause_button.isChecked():
            self.status_label.setText(f"{update.heard_s:.1f} s heard · text {update.lag_s:.1f} s behind")

    def _render(self) -> None:
        tentative = "".join(w[2] for w in self.tentative)
        self.text_view.setHtml(
            f"<p>{html.escape(self.final_text.strip())} "
            f'<span style="color:{TENTATIVE_COLOUR}; font-style:italic">{html.escape(tentative.strip())}</span></p>')
        bar = self.text_view.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _capture_failed(self, line: str) -> None:
        self.status_label.setText(line)
        self.stop()  # what was heard until then is kept and saved

    def _failed(self, line: str) -> None:
        self.status_label.setText(line)
        if self._finishing is not None and not self._finishing.is_alive():
            self._reset()

    def _saved(self, record: "JobRecord") -> None:
        seconds = self.session.seconds if self.session is not None else 0.0
        self._reset()
        self.status_label.setText(f"Saved {record.name} ({seconds:.1f} s) as a job: its file transcript is made "
                                  "in the list.")

    def _reset(self) -> None:
        self.session, self.capture, self._finishing = None, None, None
        self.pause_button.setChecked(False)
        self._set_state("idle")

    def _set_state(self, state: str) -> None:
        has_input = self.device_combo.count() > 0
        self.start_button.setEnabled(state == "idle" and has_input)
        self.device_combo.setEnabled(state == "idle")
        self.pause_button.setEnabled(state == "running")
        self.stop_button.setEnabled(state == "running")
        if state != "running":
            self.pause_button.setText("Pause")

    def _emit(self, signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the window was deleted meanwhile
            log.info("live: %s after the window closed", args)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        self.stop()  # closing the window stops listening; the recording is saved
        super().closeEvent(event)


def queue_unfinished_recordings(jobs: "JobQueue") -> None:
    """Recordings an earlier run left unfinished (it crashed while listening) queued as jobs, off the GUI thread."""
    from worker.live.session import resume_unfinished

    def run() -> None:
        try:
            resume_unfinished(jobs)
        except (OSError, sqlite3.Error) as exc:  # they stay on disk, for the next start
            log.warning("live: unfinished recordings not queued (%s)", exc)

    threading.Thread(target=run, name="live-resume", daemon=True).start()

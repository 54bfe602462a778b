"""Page 5 (optional): the bundled 11-second sample transcribed on a T4, through the job queue like any file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QVBoxLayout

from gui.wizard.shared import CANCELLED, Output, WizardPage, log, log_view, wrapped_label
from worker.backends.events import timing_line
from worker.core.cancel import CancelToken
from worker.core.errors import Cancelled, TranscriptionError
from worker.core.options import TranscriptionOptions
from worker.transcripts.model import Transcript

if TYPE_CHECKING:
    from worker.backends.base import Backend


class TryPage(WizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Try it")
        self.setSubTitle("Optional: transcribe an 11-second sample on a T4 GPU.")
        self.transcript: Transcript | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(wrapped_label(
            "The sample is President Kennedy's \"ask not\" line (1961). On a warm container this takes a few "
            "seconds; a cold start adds up to a minute. It costs a fraction of a cent."
        ))
        row = QHBoxLayout()
        self.run_button = QPushButton("Transcribe the sample")
        self.run_button.setObjectName("tryButton")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("tryCancel")
        self.cancel_button.setEnabled(False)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.status = wrapped_label(name="tryStatus")
        layout.addWidget(self.status)
        self.text_view = log_view("tryTranscript", 80)
        self.text_view.setFont(QFont())
        layout.addWidget(self.text_view)
        self.timing_view = log_view("tryTimings", 60)
        self.timing_view.setMaximumHeight(110)
        layout.addWidget(self.timing_view)
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.setFinalPage(True)

    def start(self) -> None:
        wiz = self.wiz
        sample = wiz.sample_path
        model = wiz.model
        self.text_view.clear()
        self.timing_view.clear()
        self.transcript = None
        self.status.setText(f"Transcribing {sample.name} with {model} on Modal…")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

        def work(output: Output, cancel: CancelToken) -> Transcript:
            return transcribe_sample(sample, TranscriptionOptions(model=model, language="en"),
                                     wiz.services.make_backend, output, cancel)

        self.task = wiz.start_task("try", work, self._done, self._failed, self._line)

    def _line(self, report: object) -> None:
        """A report of the sample's job: its segments under each other, its timing and other log lines below."""
        from worker.jobs.events import LogLine, SegmentsArrived, SummaryLine, TimingLine

        if isinstance(report, SegmentsArrived):
            for segment in report.segments:
                if segment.text.strip():
                    self.append_line(self.text_view, segment.text.strip())
        elif isinstance(report, TimingLine):
            self.append_line(self.timing_view, timing_line(dict(report.timings), report.chunk_index, report.chunk_count))
        elif isinstance(report, SummaryLine):
            self.append_line(self.timing_view, report.summary)
        elif isinstance(report, LogLine):
            self.append_line(self.timing_view, report.text.removeprefix(f"{self.wiz.sample_path.name}: "))

    def _finish(self) -> None:
        self.task = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _done(self, transcript: Transcript) -> None:
        self._finish()
        self.transcript = transcript
        self.text_view.setPlainText(self.wiz.scrub(transcript.text))
        timings = transcript.timings or {}
        if timings and not self.timing_view.toPlainText():
            self.append_line(self.timing_view, timing_line(timings))
        gpu = str(timings.get("gpu", "?"))
        if gpu.lower() == "cpu":
            self.status.setText("Done, on a CPU (not a Modal GPU).")
        else:
            self.status.setText(f"Done on {gpu}: Modal is ready for your files.")
        log.info("sample transcribed on %s", gpu)

    def _failed(self, message: str) -> None:
        self._finish()
        self.status.setText("Cancelled." if message == CANCELLED else f"The sample did not go through: {message}")
        log.info("try: %s", message)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.status.setText("Cancelling…")

    def cleanupPage(self) -> None:
        self.cancel()


def transcribe_sample(sample: Path, options: TranscriptionOptions, make_backend: Callable[[], Backend],
                      report: Callable[[Any], None], cancel: CancelToken) -> Any:
    """In the try step's thread: the sample through the job queue (worker.jobs.queue), like any file, with a
    library of its own in memory (the sample never lands in the user's library). Its segments and log lines
    go to `report` as the queue's reports (SegmentsArrived, TimingLine, SummaryLine…). Returns the Transcript."""
    import threading
    from dataclasses import replace

    from worker.jobs.preferences import Preferences
    from worker.jobs.events import FailureLine, JobFinished, LogLine, QueueEvent, SegmentsArrived
    from worker.jobs.queue import JobQueue
    from worker.library.job_status import JobStatus
    from worker.library.library import Library

    endings: list[JobFinished] = []
    ended = threading.Event()

    def listen(event: QueueEvent) -> None:
        if isinstance(event, SegmentsArrived) or isinstance(event, LogLine) and not isinstance(event, FailureLine):
            report(event)  # a failure is said once, as the step's ending
        elif isinstance(event, JobFinished):
            endings.append(event)
            ended.set()

    library = Library(":memory:")
    preferences = replace(Preferences.load(), backend="modal", auto_export_formats=())
    queue = JobQueue(library, preferences, listen, backend_factory=lambda _name, _prefs: make_backend(),
                     modal_ready=lambda: True, only_own_jobs=True)
    try:
        [record] = queue.add_files([sample], "modal", options)
        cancel.on_cancel(lambda: queue.cancel([record.id]))
        ended.wait()
        ending = endings[0]
        if ending.status == JobStatus.CANCELLED:
            raise Cancelled()
        if ending.status == JobStatus.FAILED:
            raise TranscriptionError(ending.error or "the sample did not go through")
        return ending.transcript
    finally:
        queue.shutdown()  # closes the backend
        library.close()

"""The queue table: a QAbstractTableModel over the library's jobs plus their live progress, and the
delegate that draws the progress column as a progress bar with the stage and ETA."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QApplication, QStyledItemDelegate, QStyleOptionViewItem

from worker.backends.base import BACKEND_LABELS
from worker.library.job_status import JobStatus
from worker.library.jobs import JobRecord
from worker.modal.cost import estimate_modal_cost

FILE, DURATION, BACKEND, MODEL, STATUS, PROGRESS, ELAPSED = range(7)
HEADERS = ("File", "Duration", "Backend", "Model", "Status", "Progress", "Elapsed")
JOB_ID_ROLE = Qt.ItemDataRole.UserRole + 1
FRACTION_ROLE = Qt.ItemDataRole.UserRole + 2
STATUS_ROLE = Qt.ItemDataRole.UserRole + 3
# plain ints: data() runs for every role of every painted cell, and enum lookups are slow in Python
_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_OWN_ROLES = frozenset({int(JOB_ID_ROLE), int(FRACTION_ROLE), int(STATUS_ROLE)})
_HANDLED_ROLES = frozenset({_DISPLAY, _TOOLTIP, _ALIGNMENT}) | _OWN_ROLES
_RIGHT_ALIGNED = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)


def format_clock(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


@dataclass
class JobRow:
    record: JobRecord
    fraction: float = 0.0
    stage: str = ""  # Progress.label() of the latest event
    eta_s: float | None = None
    running_since: float | None = None  # time.monotonic() when it started here
    cancelling: bool = False
    duration_unknown: bool = False  # the probe could not read it (the job will say why when it runs)

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def status(self) -> str:
        return self.record.status

    def elapsed(self) -> float | None:
        if self.record.status == JobStatus.RUNNING and self.running_since is not None:
            return time.monotonic() - self.running_since
        return self.record.elapsed

    def progress_text(self) -> str:
        status = self.record.status
        if status == JobStatus.FAILED:
            return self.record.error or "failed"
        if status == JobStatus.CANCELLED:
            return "cancelled"
        if status == JobStatus.DONE:
            return "done"
        if status == JobStatus.QUEUED:
            return "queued"
        if self.cancelling:
            return "cancelling…"
        text = self.stage or "starting"
        text += f" — {self.fraction:.0%}"
        if self.eta_s is not None:
            text += f" · ETA {format_clock(self.eta_s)}"
        return text

    def bar_fraction(self) -> float:
        if self.record.status == JobStatus.DONE:
            return 1.0
        if self.record.status in (JobStatus.QUEUED, JobStatus.FAILED):
            return 0.0
        return max(0.0, min(1.0, self.fraction))


class QueueModel(QAbstractTableModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[JobRow] = []
        self._index: dict[int, int] = {}
        # Preferences.backend_settings("modal") (rate, chunk length, containers): queued Modal jobs show a cost estimate
        self.modal_settings: dict[str, Any] = {}

    # Qt model API
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = _DISPLAY) -> Any:
        role = int(role)
        if role not in _HANDLED_ROLES:
            return None
        number = index.row()
        if number < 0 or number >= len(self._rows):
            return None
        row = self._rows[number]
        column = index.column()
        record = row.record
        if role in _OWN_ROLES:
            if role == JOB_ID_ROLE:
                return record.id
            if role == STATUS_ROLE:
                return str(record.status)
            return row.bar_fraction()
        if role == _DISPLAY:
            if column == FILE:
                return record.name
            if column == DURATION:
                if record.duration is not None:
                    return format_clock(record.duration)
                return "—" if row.duration_unknown else "…"
            if column == BACKEND:
                return BACKEND_LABELS.get(record.backend, record.backend)
            if column == MODEL:
                return record.options.model
            if column == STATUS:
                return "cancelling" if row.cancelling and record.status == JobStatus.RUNNING else str(record.status)
            if column == PROGRESS:
                estimate = self._cost_estimate(record)
                return f"{row.progress_text()} · {estimate.short()}" if estimate else row.progress_text()
            if column == ELAPSED:
                return format_clock(row.elapsed())
        if role == _TOOLTIP:
            if record.status == JobStatus.FAILED:
                detail = record.error_detail or ""
                return f"{record.error or 'failed'}\n\n{detail}".strip()
            if column == FILE:
                return record.path
            if column == MODEL:
                speakers = record.options.speakers
                who = "off" if not speakers else ("found automatically" if speakers == "auto" else speakers)
                return f"{record.options.model}; speaker labels: {who} (Queue > Speakers)"
            if column == PROGRESS:
                estimate = self._cost_estimate(record)
                return f"{row.progress_text()}\n{estimate.line()}" if estimate else row.progress_text()
            return None
        if role == _ALIGNMENT and column in (DURATION, ELAPSED):
            return _RIGHT_ALIGNED
        return None

    def _cost_estimate(self, record: JobRecord) -> Any:
        """A queued Modal job's cost estimate (worker.modal.cost.CostEstimate), or None."""
        if record.status != JobStatus.QUEUED or record.backend != "modal" or not record.duration:
            return None
        keys = ("dollars_per_hour", "chunk_s", "max_containers", "plan")
        return estimate_modal_cost(record.duration, record.options.model, **{k: v for k, v in self.modal_settings.items() if k in keys})

    # rows
    def set_jobs(self, records: list[JobRecord]) -> None:
        """Replace the rows (keeping the live progress of jobs that stay)."""
        old = {row.id: row for row in self._rows}
        self.beginResetModel()
        self._rows = []
        for record in records:
            row = old.get(record.id)
            self._rows.append(replace(row, record=record) if row else JobRow(record))
        self._reindex()
        self.endResetModel()

    def add(self, record: JobRecord) -> None:
        position = len(self._rows)
        self.beginInsertRows(QModelIndex(), position, position)
        self._rows.append(JobRow(record))
        self._reindex()
        self.endInsertRows()

    def reorder(self, order: tuple[int, ...] | list[int]) -> None:
        """The rows in the queue's new order (every job's id, as JobsReordered carries it); a selection follows
        its rows."""
        position = {job_id: number for number, job_id in enumerate(order)}
        self.layoutAboutToBeChanged.emit()
        persistent = self.persistentIndexList()
        kept = [(self._rows[index.row()].id, index.column()) for index in persistent]
        self._rows.sort(key=lambda row: position.get(row.id, len(position)))  # stable: unknown ids keep their order
        self._reindex()
        self.changePersistentIndexList(persistent, [self.index(self._index[job_id], column) for job_id, column in kept])
        self.layoutChanged.emit()

    def remove(self, job_id: int) -> None:
        row = self._index.get(job_id)
        if row is None:
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._rows[row]
        self._reindex()
        self.endRemoveRows()

    def update_record(self, record: JobRecord) -> None:
        row = self._index.get(record.id)
        if row is None:
            return
        self._rows[row].record = record
        if record.status != JobStatus.RUNNING:
            self._rows[row].cancelling = False
        self._changed(row)

    def set_progress(self, job_id: int, fraction: float, stage: str, eta_s: float | None) -> None:
        row = self._index.get(job_id)
        if row is None:
            return
        entry = self._rows[row]
        entry.fraction, entry.stage, entry.eta_s = fraction, stage, eta_s
        self._changed(row, STATUS, PROGRESS)

    def mark_running(self, job_id: int, since: float) -> None:
        row = self._index.get(job_id)
        if row is not None:
            entry = self._rows[row]
            entry.running_since, entry.fraction, entry.stage, entry.eta_s = since, 0.0, "starting", None
            entry.cancelling = False
            self._changed(row)

    def set_duration_unknown(self, job_id: int) -> None:
        row = self._index.get(job_id)
        if row is not None:
            self._rows[row].duration_unknown = True
            self._changed(row, DURATION, DURATION)

    def mark_cancelling(self, job_id: int) -> None:
        row = self._index.get(job_id)
        if row is not None:
            self._rows[row].cancelling = True
            self._changed(row, STATUS, PROGRESS)

    def refresh_elapsed(self) -> None:
        for number, row in enumerate(self._rows):
            if row.record.status == JobStatus.RUNNING:
                self._changed(number, ELAPSED, ELAPSED)

    # lookups
    def job_row(self, job_id: int) -> JobRow | None:
        row = self._index.get(job_id)
        return None if row is None else self._rows[row]

    def row_of(self, job_id: int) -> int | None:
        return self._index.get(job_id)

    def job_id_at(self, row: int) -> int:
        return self._rows[row].id

    def job_ids(self) -> list[int]:
        return [row.id for row in self._rows]

    def rows(self) -> list[JobRow]:
        return list(self._rows)

    def totals(self) -> Counter[str]:
        return Counter(row.record.status for row in self._rows)

    def _reindex(self) -> None:
        self._index = {row.id: number for number, row in enumerate(self._rows)}

    def _changed(self, row: int, first: int = 0, last: int = len(HEADERS) - 1) -> None:
        self.dataChanged.emit(self.index(row, first), self.index(row, last))


class ProgressDelegate(QStyledItemDelegate):
    """Paints the progress column as a native progress bar with the stage text inside."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> None:
        from PySide6.QtWidgets import QStyle, QStyleOptionProgressBar  # QStyle is large: loaded at first paint

        if option.state & QStyle.StateFlag.State_Selected:
            option.widget.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, option, painter, option.widget)
        fraction = index.data(FRACTION_ROLE) or 0.0
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.direction = option.direction
        bar.fontMetrics = option.fontMetrics
        bar.palette = option.palette
        bar.minimum = 0
        bar.maximum = 1000
        bar.progress = int(round(float(fraction) * 1000))
        bar.text = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        bar.textVisible = True
        bar.textAlignment = Qt.AlignmentFlag.AlignCenter
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)

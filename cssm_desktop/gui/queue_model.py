"""The upload queue as the table the window shows (the scheduler is in jobs.py)."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)

from ..text import printable
from ..units import human, seconds
from .jobs import Job, JobQueue, State

COLUMNS = ("Name", "Size", "Progress", "Speed", "Status", "")
PROGRESS_COLUMN = 2
CANCEL_COLUMN = 5  # holds the per-row cancel button


class QueueModel(QAbstractTableModel):
    """The upload queue as a table: one row per job, kept in step with the queue."""

    def __init__(self, queue: JobQueue, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        # Bound methods, not lambdas: Qt drops the connections when the model goes.
        queue.about_to_add.connect(self._about_to_add)
        queue.added.connect(self.endInsertRows)
        queue.about_to_reset.connect(self.beginResetModel)
        queue.reset.connect(self.endResetModel)
        queue.changed.connect(self._changed)
        queue.rows_changed.connect(self._rows_changed)
        queue.held_changed.connect(self._held_changed)

    def _about_to_add(self, first: int, count: int) -> None:
        self.beginInsertRows(QModelIndex(), first, first + count - 1)

    def _changed(self, row: int) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def _held_changed(self, _held: bool) -> None:
        if self.queue.jobs:   # waiting rows say "paused" while the user holds the queue
            self._rows_changed(0, len(self.queue.jobs) - 1)

    def _rows_changed(self, first: int, last: int) -> None:
        self.dataChanged.emit(self.index(first, 0), self.index(last, len(COLUMNS) - 1))

    @property
    def jobs(self) -> list[Job]:
        return self.queue.jobs

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.jobs)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.tr(COLUMNS[section]) if COLUMNS[section] else ""
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex,
             role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        job = self.jobs[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return printable(job.name)
            if col == 1:
                return human(job.size)
            if col == PROGRESS_COLUMN:
                if job.state is State.SKIPPED:
                    return self.tr("nothing sent")
                if job.state is State.RUNNING and job.checked >= 0:
                    return self.tr("read %1 of %2").replace("%1", human(job.checked)) \
                        .replace("%2", human(job.size))
                return f"{human(job.shown)} / {human(job.size)}"
            if col == 3:
                return f"{human(job.speed)}/s" \
                    if job.state is State.RUNNING and job.checked < 0 and not job.stalled \
                    else ""
            if col == 4:
                return self._status(job)
        if role == Qt.ItemDataRole.UserRole and col == PROGRESS_COLUMN:
            if job.state is State.DONE:
                return 100
            if job.state is State.SKIPPED:   # nothing went up: no full bar (B7)
                return 0
            done = job.checked if job.state is State.RUNNING and job.checked >= 0 \
                else job.shown
            return int(100 * done / job.size) if job.size else 0
        if role == Qt.ItemDataRole.ToolTipRole:
            return job.error or str(job.source)
        return None

    def _status(self, job: Job) -> str:
        if job.state is State.RUNNING and job.stalled:
            return self.tr("waiting for store “%1”… %2").replace("%1", job.stalled).replace(
                "%2", seconds(time.monotonic() - job.stalled_since))
        if job.state is State.RUNNING and job.checked >= 0:
            return self.tr("checking whether it is stored already")
        if job.state is State.RUNNING and job.eta is not None:
            return self.tr("uploading, %n s left", "", max(1, round(job.eta)))
        if job.state is State.FAILED:
            return self.tr("failed: ") + job.error
        if job.state is State.WAITING and job.kept:
            return (self.tr("paused") if self.queue.held else self.tr("waiting")) + ", " \
                + self.tr("%1 kept").replace("%1", human(job.kept))
        if job.state is State.WAITING and self.queue.held:
            return self.tr("paused")
        return self.tr(job.state.value)
